# -*- coding: utf-8 -*-
# vim: ft=sls
# Control files for the host's role (seed §4, §5) with pillar overrides.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

{%- for name, contents in qmail.control_managed | dictsort %}

{{ ("qmail-control-file-managed-" ~ name) | json }}:
  qmail_control.managed:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
    - contents: {{ contents | json }}
{%- endfor %}

{%- for name in qmail.control_absent %}

{{ ("qmail-control-file-absent-" ~ name) | json }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}

{#- qmail:smarthost: control/authsenders, qmailr's alone (0400). Its password
    comes to the state from the settings, never through this file. Without a
    smarthost the formula's authsenders is removed (another is left). #}
{%- set smarthost = qmail.smarthost %}
{%- set authsenders = qmail.lookup.home ~ "/control/authsenders" %}
{%- if smarthost.enable %}

qmail-control-authsenders-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ authsenders | json }}
    - kind: files
    - ledger: {{ qmail.lookup.ledger | json }}
    - marker: {{ qmail.owns.made.authsenders | json }}
    - require_in:
      - qmail_submission: qmail-control-authsenders-qmail_submission-authsenders_managed
{%- endif %}

qmail-control-authsenders-qmail_submission-authsenders_managed:
  qmail_submission.authsenders_managed:
    - name: {{ authsenders | json }}
    - account: {{ qmail.lookup.users.qmailr | json }}
    - host: {{ smarthost.host | json }}
    - port: {{ smarthost.port | json }}
    - user: {{ smarthost.user | json }}
