# -*- coding: utf-8 -*-
# vim: ft=sls
# Control files for the host's role (seed §4, §5) with pillar overrides.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- from tplroot ~ "/libsid.jinja" import sid %}

{%- for name, contents in qmail.control_managed | dictsort %}

{{ sid(["qmail-control-file-managed-", name]) }}:
  qmail_control.managed:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
    - contents: {{ contents | json }}
{%- endfor %}

{%- for name in qmail.control_absent %}

{{ sid(["qmail-control-file-absent-", name]) }}:
  qmail_control.absent:
    - name: {{ name | json }}
    - home: {{ qmail.lookup.home | json }}
{%- endfor %}
