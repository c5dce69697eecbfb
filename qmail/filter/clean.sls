# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo qmail.filter: the folder (programs, filter.json, DKIM keys) and the
# daemon's socket folder only when the ledger lists them; packages and spamd
# stay (the system's). qmail.service.clean stops qmail-smtpd, then
# qmail-filterd, first: no message meets a missing program.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

qmail-filter-clean-dir-qmail_ledger-removed:
  qmail_ledger.removed:
    - name: {{ qmail.filter.files.dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.filter_dir | json }}

qmail-filter-clean-socket-dir-qmail_ledger-removed:
  qmail_ledger.removed:
    - name: {{ qmail.filter.daemon.socket_dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ [qmail.filter.daemon.socket_name] | json }}
