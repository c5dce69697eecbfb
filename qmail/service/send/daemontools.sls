# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-send supervised by daemontools: svscan (a systemd unit of ours,
# enabled at boot) watches the service directory, which links to
# <home>/supervise/qmail-send.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}

include:
  - {{ tplroot }}.build
  - {{ tplroot }}.control
  - .run

qmail-service-svscan-dir-file-directory:
  file.directory:
    - name: {{ paths.service_dir }}
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0755'

qmail-service-svscan-unit-file-managed:
  file.managed:
    - name: {{ paths.unit_dir }}/qmail-svscan.service
    - source: salt://{{ tplroot }}/files/service/qmail-svscan.service
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0644'
    - context:
        service_dir: {{ paths.service_dir }}
        daemontools_bin: {{ paths.daemontools_bin }}

qmail-service-svscan-service-running:
  service.running:
    - name: qmail-svscan
    - enable: True
    - require:
      - file: qmail-service-svscan-dir-file-directory
    - watch:
      - file: qmail-service-svscan-unit-file-managed

qmail-service-send-link-file-symlink:
  file.symlink:
    - name: {{ paths.service_dir }}/qmail-send
    - target: {{ qmail.lookup.home }}/supervise/qmail-send
    - require:
      - file: qmail-service-send-run-file-managed
      - service: qmail-service-svscan-service-running
      - file: qmail-build-rc-file-managed
      - qmail_control: me

qmail-service-send-start-module-run:
  module.run:
    - qmail_service.start:
      - supervisor: daemontools
      - service_dir: {{ paths.service_dir }}
    - unless:
      - fun: qmail_service.send_pid
        supervisor: daemontools
        service_dir: {{ paths.service_dir }}
    - require:
      - file: qmail-service-send-link-file-symlink

qmail-service-send-restart-module-run:
  module.run:
    - qmail_service.restart:
      - supervisor: daemontools
      - service_dir: {{ paths.service_dir }}
    - require:
      - module: qmail-service-send-start-module-run
    - onchanges:
      - file: qmail-service-send-run-file-managed
      - file: qmail-build-rc-file-managed
      - qmail_build: qmail-build-tree-qmail_build-installed
{%- for name in qmail.control_reload.restart %}
      - qmail_control: {{ name }}
{%- endfor %}
