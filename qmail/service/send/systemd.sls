# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-send as the systemd unit qmail-send.service, enabled at boot;
# restarted when a control file it reads only at start changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

include:
  - {{ tplroot }}.build
  - {{ tplroot }}.control
  - .run

qmail-service-send-unit-file-managed:
  file.managed:
    - name: {{ qmail.lookup.service.unit_dir }}/qmail-send.service
    - source: salt://{{ tplroot }}/files/service/qmail-send.service
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0644'
    - context:
        home: {{ qmail.lookup.home }}

qmail-service-send-service-running:
  service.running:
    - name: qmail-send
    - enable: True
    - require:
      - qmail_control: me
    - watch:
      - file: qmail-service-send-unit-file-managed
      - file: qmail-service-send-run-file-managed
      - file: qmail-build-rc-file-managed
      - qmail_build: qmail-build-tree-qmail_build-installed
{%- for name in qmail.control_reload.restart %}
      - qmail_control: {{ name }}
{%- endfor %}
