# -*- coding: utf-8 -*-
# vim: ft=sls
# Control files for the host's role (seed §4, §5) with pillar overrides.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

{%- for name, contents in qmail.control_managed | dictsort %}

{{ ("qmail-control-file-managed-" ~ name) | json }}:
  qmail_control.managed:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
    - contents: {{ contents | json }}
{%- endfor %}

{%- for name in qmail.control_absent %}

{{ ("qmail-control-file-absent-" ~ name) | json }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}
