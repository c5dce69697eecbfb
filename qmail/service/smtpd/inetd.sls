# -*- coding: utf-8 -*-
# vim: ft=sls
# The seed's way for a spool: inetd runs qmail-smtpd (through tcp-env and the
# wrapper that refuses mail without rcpthosts) for each connection.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}

include:
  - {{ tplroot }}.control
  - .off.tcpserver

qmail-service-smtpd-wrapper-file-managed:
  file.managed:
    - name: {{ qmail.lookup.home }}/supervise/qmail-smtpd/smtpd
    - source: salt://{{ tplroot }}/files/service/smtpd
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0755'
    - makedirs: True
    - context:
        home: {{ qmail.lookup.home }}

qmail-service-smtpd-inetd-conf-file-managed:
  file.managed:
    - name: {{ paths.inetd_conf }}
    - replace: False
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0644'

qmail-service-smtpd-inetd-line-file-replace:
  file.replace:
    - name: {{ paths.inetd_conf }}
    - pattern: '^[ \t]*(smtp|{{ qmail.service.smtpd_port }})[ \t]+stream[ \t][^\n]*$'
    - repl: '{{ qmail.service.inetd_line }}'
    - flags: ['MULTILINE']
    - append_if_not_found: True
    - backup: False
    - require:
      - qmail_control: rcpthosts
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-inetd-conf-file-managed
      - service: qmail-service-smtpd-service-dead

qmail-service-smtpd-inetd-reload-module-run:
  module.run:
    - qmail_service.reload_inetd: []
    - onchanges:
      - file: qmail-service-smtpd-inetd-line-file-replace
