# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the alias files the formula manages; the Maildirs keep their mail.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- from tplroot ~ "/libsid.jinja" import sid %}

{%- for name in qmail.aliases_files | sort %}

{{ sid(["qmail-aliases-clean-qmail-", name, "-file-absent"]) }}:
  file.absent:
    - name: {{ (qmail.lookup.home ~ '/alias/.qmail-' ~ name) | json }}
{%- endfor %}
