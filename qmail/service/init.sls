# -*- coding: utf-8 -*-
# vim: ft=sls
# Run qmail: qmail-send under the chosen supervisor, told of control file
# changes (HUP, restart, qmail-newmrh); qmail-smtpd on a spool only.
# Which files apply is settled by qmail_service.check_settings.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

include:
  - {{ tplroot }}.control
{%- for sls in qmail.service.sls %}
  - .{{ sls }}
{%- endfor %}
