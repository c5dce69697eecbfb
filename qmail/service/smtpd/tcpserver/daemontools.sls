# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-smtpd supervised by daemontools, next to qmail-send.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}

include:
  - {{ tplroot }}.control
  - {{ tplroot }}.service.send.daemontools
  - {{ tplroot }}.service.smtpd.tcpserver

qmail-service-smtpd-link-file-symlink:
  file.symlink:
    - name: {{ paths.service_dir }}/qmail-smtpd
    - target: {{ qmail.lookup.home }}/supervise/qmail-smtpd
    - require:
      - qmail_control: rcpthosts
      - cmd: qmail-service-smtpd-rules-cdb-cmd-run
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-run-file-managed
      - file: qmail-service-smtpd-inetd-line-file-replace
      - service: qmail-service-svscan-service-running

# A new run script takes effect when supervise starts tcpserver again.
qmail-service-smtpd-restart-cmd-run:
  cmd.run:
    - name: {{ paths.daemontools_bin }}/svc -t {{ paths.service_dir }}/qmail-smtpd
    - onlyif: {{ paths.daemontools_bin }}/svok {{ paths.service_dir }}/qmail-smtpd
    - onchanges:
      - file: qmail-service-smtpd-run-file-managed
    - require:
      - file: qmail-service-smtpd-link-file-symlink
