# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo qmail.filter: the folder (program, filter.json, DKIM keys) only when
# the ledger lists it; packages and spamd stay (the system's). qmail.service
# .clean stops qmail-smtpd first, so no message meets a missing program.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

qmail-filter-clean-dir-qmail_ledger-removed:
  qmail_ledger.removed:
    - name: {{ qmail.filter.files.dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.filter_dir | json }}
