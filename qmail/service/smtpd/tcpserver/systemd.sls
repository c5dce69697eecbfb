# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-smtpd as the systemd unit qmail-smtpd.service, enabled at boot.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

include:
  - {{ tplroot }}.control
  - {{ tplroot }}.service.smtpd.tcpserver

qmail-service-smtpd-unit-file-managed:
  file.managed:
    - name: {{ qmail.lookup.service.unit_dir }}/qmail-smtpd.service
    - source: salt://{{ tplroot }}/files/service/qmail-smtpd.service
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0644'
    - context:
        home: {{ qmail.lookup.home }}
        port: {{ qmail.service.smtpd_port }}

qmail-service-smtpd-service-running:
  service.running:
    - name: qmail-smtpd
    - enable: True
    - require:
      - qmail_control: rcpthosts
      - cmd: qmail-service-smtpd-rules-cdb-cmd-run
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-inetd-line-file-replace
    - watch:
      - file: qmail-service-smtpd-unit-file-managed
      - file: qmail-service-smtpd-run-file-managed
