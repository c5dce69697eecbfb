# -*- coding: utf-8 -*-
# vim: ft=sls
# No qmail-smtpd under tcpserver: its unit stopped and disabled, its
# daemontools link gone.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}

qmail-service-smtpd-service-dead:
  service.dead:
    - name: qmail-smtpd
    - enable: False
    - onlyif:
      # absent unit: nothing to stop (and test mode predicts nothing)
      - fun: service.available
        args:
          - qmail-smtpd

qmail-service-smtpd-link-file-absent:
  file.absent:
    - name: {{ paths.service_dir }}/qmail-smtpd

qmail-service-smtpd-supervise-cmd-run:
  cmd.run:
    - name: {{ paths.daemontools_bin }}/svc -dx {{ qmail.lookup.home }}/supervise/qmail-smtpd
    - onlyif: {{ paths.daemontools_bin }}/svok {{ qmail.lookup.home }}/supervise/qmail-smtpd
    - require:
      - file: qmail-service-smtpd-link-file-absent
