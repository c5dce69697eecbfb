# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the control files this formula manages; others stay.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- from tplroot ~ "/libsid.jinja" import sid %}

{%- for name in qmail.control_managed | sort %}

{{ sid(["qmail-control-clean-file-absent-", name]) }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}
