# -*- coding: utf-8 -*-
# vim: ft=sls
# No qmail-smtpd line in inetd.conf (seed §5.1: edit inetd.conf to stop
# qmail-smtpd); inetd re-reads the file when one was removed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

qmail-service-smtpd-inetd-line-file-replace:
  file.replace:
    - name: {{ qmail.lookup.service.inetd_conf }}
    - pattern: '^[ \t]*[^#\s][^\n]*qmail-smtpd[^\n]*\n?'
    - repl: ''
    - flags: ['MULTILINE']
    - ignore_if_missing: True
    - backup: False

qmail-service-smtpd-inetd-reload-module-run:
  module.run:
    - qmail_service.reload_inetd:
      - missing_ok: True
    - onchanges:
      - file: qmail-service-smtpd-inetd-line-file-replace
