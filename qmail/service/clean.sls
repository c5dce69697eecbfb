# -*- coding: utf-8 -*-
# vim: ft=sls
# Stop and disable what qmail.service started, under every supervisor (the
# pillar may have changed since), and remove its files. The queue stays:
# qmail-send is stopped with TERM, which lets deliveries under way finish.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}

include:
  - {{ tplroot }}.service.smtpd.off

# systemd
qmail-service-clean-send-service-dead:
  service.dead:
    - name: qmail-send
    - enable: False
    - onlyif:
      # absent unit: nothing to stop (and test mode predicts nothing)
      - fun: service.available
        args:
          - qmail-send
    - require:
      - service: qmail-service-smtpd-service-dead

# daemontools: out of svscan's directory first, then supervise exits.
qmail-service-clean-send-link-file-absent:
  file.absent:
    - name: {{ paths.service_dir }}/qmail-send

qmail-service-clean-send-supervise-cmd-run:
  cmd.run:
    - name: {{ paths.daemontools_bin }}/svc -dx {{ home }}/supervise/qmail-send
    - onlyif: {{ paths.daemontools_bin }}/svok {{ home }}/supervise/qmail-send
    - require:
      - file: qmail-service-clean-send-link-file-absent
      - cmd: qmail-service-smtpd-supervise-cmd-run

qmail-service-clean-svscan-service-dead:
  service.dead:
    - name: qmail-svscan
    - enable: False
    - onlyif:
      # absent unit: nothing to stop (and test mode predicts nothing)
      - fun: service.available
        args:
          - qmail-svscan
    - require:
      - cmd: qmail-service-clean-send-supervise-cmd-run

# bootscript
qmail-service-clean-bootscript-file-replace:
  file.replace:
    - name: {{ paths.boot_script }}
    - pattern: '^# BEGIN qmail-send \(managed by Salt[^\n]*\n(?:[^\n]*\n)*?# END qmail-send\n?'
    - repl: ''
    - flags: ['MULTILINE']
    - bufsize: file
    - ignore_if_missing: True
    - backup: False

qmail-service-clean-send-stop-module-run:
  module.run:
    - qmail_service.stop:
      - supervisor: bootscript
    - onlyif:
      - fun: qmail_service.send_pid
        supervisor: bootscript
    - require:
      - service: qmail-service-clean-send-service-dead
      - service: qmail-service-clean-svscan-service-dead

# The files qmail.service wrote (the queue and qmail's own files stay).
{%- for file in [paths.unit_dir ~ "/qmail-send.service",
                 paths.unit_dir ~ "/qmail-smtpd.service",
                 paths.unit_dir ~ "/qmail-svscan.service",
                 home ~ "/supervise",
                 paths.tcp_rules,
                 paths.tcp_rules ~ ".cdb"] %}

qmail-service-clean-{{ file | replace("/", "-") | trim("-") }}-file-absent:
  file.absent:
    - name: {{ file }}
    - require:
      - module: qmail-service-clean-send-stop-module-run
{%- endfor %}

qmail-service-clean-systemd-reload-module-run:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: {{ paths.unit_dir }}/qmail-send.service
      - file: {{ paths.unit_dir }}/qmail-smtpd.service
      - file: {{ paths.unit_dir }}/qmail-svscan.service
