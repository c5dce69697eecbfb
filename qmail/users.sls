# -*- coding: utf-8 -*-
# vim: ft=sls
# The accounts of qmail's INSTALL.ids, before anything is built (qmail-1.03
# bakes their ids into its binaries).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

{#- Each account is in the ledger before it is created (issue 20's kill
    trial: an apply killed after group.present, before the record, left the
    formula's own empty group unlisted, and the next render refused it).
    One state per kind, for all its accounts. #}
{%- for kind, entries in [("groups", qmail.accounts_groups), ("users", qmail.accounts_users)] %}

{{ ("qmail-users-" ~ kind ~ "-qmail_ledger-intended") | json }}:
  qmail_ledger.intended:
    - name: {{ ("qmail " ~ kind) | json }}
    - kind: {{ kind | json }}
    - entries: {{ entries | map(attribute="name") | list | json }}
    - ledger: {{ qmail.lookup.ledger | json }}
{%- endfor %}

{%- for group in qmail.accounts_groups %}

{{ ("qmail-users-group-present-" ~ group.key) | json }}:
  group.present:
    - name: {{ group.name | json }}
    - system: true
{%-   if group.gid %}
    - gid: {{ group.gid | json }}
{%-   endif %}
    - require:
      - qmail_ledger: qmail-users-groups-qmail_ledger-intended
{%- endfor %}

{%- for user in qmail.accounts_users %}

{{ ("qmail-users-user-present-" ~ user.key) | json }}:
  user.present:
    - name: {{ user.name | json }}
    - gid: {{ user.group | json }}
    - home: {{ user.home | json }}
    - createhome: false
    - shell: {{ qmail.lookup.nologin_shell | json }}
    - system: true
    - usergroup: false
{%-   if user.uid %}
    - uid: {{ user.uid | json }}
{%-   endif %}
    - require:
      - group: {{ ("qmail-users-group-present-" ~ user.group_key) | json }}
      - qmail_ledger: qmail-users-users-qmail_ledger-intended
{%- endfor %}

{#- The ledger (issue 19): qmail.users.clean removes only these. An existing
    account passed the render-time check (qmail's shape), so it is qmail's. #}
{%- for kind, entries, state in [("groups", qmail.accounts_groups, "group"),
                                 ("users", qmail.accounts_users, "user")] %}

{{ ("qmail-users-" ~ kind ~ "-qmail_ledger-recorded") | json }}:
  qmail_ledger.recorded:
    - name: {{ ("qmail " ~ kind) | json }}
    - kind: {{ kind | json }}
    - entries: {{ entries | map(attribute="name") | list | json }}
    - ledger: {{ qmail.lookup.ledger | json }}
    - require:
{%-   for entry in entries %}
      - {{ state | json }}: {{ ("qmail-users-" ~ state ~ "-present-" ~ entry.key) | json }}
{%-   endfor %}
{%- endfor %}
