# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the alias files the formula manages; the Maildirs keep their mail.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

{%- for name in qmail.aliases_files | sort %}

{{ ("qmail-aliases-clean-qmail-" ~ name ~ "-file-absent") | json }}:
  file.absent:
    - name: {{ (qmail.lookup.home ~ '/alias/.qmail-' ~ name) | json }}
{%- endfor %}
