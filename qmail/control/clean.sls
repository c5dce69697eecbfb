# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the control files this formula manages; others stay.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

{%- for name in qmail.control_managed | sort %}

{{ ("qmail-control-clean-file-absent-" ~ name) | json }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}
