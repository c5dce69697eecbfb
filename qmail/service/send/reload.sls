# -*- coding: utf-8 -*-
# vim: ft=sls
# Tell qmail of control file changes it would not see: HUP for locals and
# virtualdomains (qmail-send keeps its PID), qmail-newmrh for morercpthosts.
# Files read per message (qmail-smtpd's, qmail-remote's) need nothing.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set supervisor = qmail.service.supervisor %}

include:
  - {{ tplroot }}.control
  - .{{ supervisor }}

qmail-service-send-hup-module-run:
  module.run:
    - qmail_service.hup:
      - supervisor: {{ supervisor }}
      - service_dir: {{ qmail.lookup.service.service_dir }}
    - require:
      - sls: {{ tplroot }}.service.send.{{ supervisor }}
    - onchanges:
{%- for name in qmail.control_reload.hup %}
      - qmail_control: {{ name }}
{%- endfor %}
{%- for name in qmail.service.newmrh_build %}

qmail-service-{{ name }}-newmrh-cmd-run:
  cmd.run:
    - name: {{ qmail.lookup.home }}/bin/qmail-newmrh
    - onchanges:
      - qmail_control: {{ name }}
{%- endfor %}
{%- for name in qmail.service.newmrh_drop %}

qmail-service-{{ name }}-cdb-file-absent:
  file.absent:
    - name: {{ qmail.lookup.home }}/control/{{ name }}.cdb
    - require:
      - qmail_control: {{ name }}
{%- endfor %}
