# -*- coding: utf-8 -*-
# vim: ft=sls
# The accounts own the installed tree and the queue: they go only with the
# tree, when pillar qmail:clean:remove_install asks for it, and only those
# the ledger lists (the formula created them).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- if qmail.clean.remove_install %}

{%-   for user in qmail.accounts_users %}

{{ ("qmail-users-clean-user-absent-" ~ user.key) | json }}:
  qmail_ledger.removed:
    - name: {{ user.name | json }}
    - kind: users
    - ledger: {{ qmail.lookup.ledger | json }}
{%-   endfor %}

{%-   for group in qmail.accounts_groups %}

{{ ("qmail-users-clean-group-absent-" ~ group.key) | json }}:
  qmail_ledger.removed:
    - name: {{ group.name | json }}
    - kind: groups
    - ledger: {{ qmail.lookup.ledger | json }}
    - require:
{%-     for user in qmail.accounts_users %}
      - qmail_ledger: {{ ("qmail-users-clean-user-absent-" ~ user.key) | json }}
{%-     endfor %}
{%-   endfor %}
{%- else %}
{#- Nothing to do: the accounts stay with the installed tree. #}
qmail-users-clean-kept-test-nop:
  test.nop:
    - name: qmail accounts kept (qmail:clean:remove_install is false)
{%- endif %}
