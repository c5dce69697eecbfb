# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo qmail.filter: the folder (programs, filter.json, DKIM keys) and the
# daemon's socket folder only when the ledger lists them; packages and spamd
# stay (the system's). qmail.service.clean stops qmail-smtpd, then
# qmail-filterd, first: no message meets a missing program.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

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
