# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the control files this formula manages; others stay.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

{%- for name in qmail.control_managed | sort %}

{{ ("qmail-control-clean-file-absent-" ~ name) | json }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}

{#- control/authsenders (qmail:smarthost): only the formula's, by the ledger. #}

qmail-control-clean-authsenders-qmail_ledger-removed:
  qmail_ledger.removed:
    - name: {{ (qmail.lookup.home ~ "/control/authsenders") | json }}
    - kind: files
    - ledger: {{ qmail.lookup.ledger | json }}
    - marker: {{ qmail.owns.made.authsenders | json }}
