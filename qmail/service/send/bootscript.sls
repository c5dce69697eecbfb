# -*- coding: utf-8 -*-
# vim: ft=sls
# The seed's way: the boot script starts <home>/rc in the background (qmail's
# INSTALL: `/var/qmail/rc &` in /etc/rc.local); Salt starts it now.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}

include:
  - {{ tplroot }}.build
  - {{ tplroot }}.control
  - .run

qmail-service-send-bootscript-file-managed:
  file.managed:
    - name: {{ paths.boot_script }}
    - contents: '#!/bin/sh'
    - replace: False
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0755'

qmail-service-send-bootscript-file-blockreplace:
  file.blockreplace:
    - name: {{ paths.boot_script }}
    - marker_start: '# BEGIN qmail-send (managed by Salt, qmail.service)'
    - marker_end: '# END qmail-send'
    - content: '{{ qmail.lookup.home }}/supervise/qmail-send/run </dev/null >/dev/null &'
    # after the #! line: an `exit 0` at the end must not skip it
    - insert_after_match: '^#!'
    - backup: False
    - require:
      - file: qmail-service-send-bootscript-file-managed

qmail-service-send-start-module-run:
  module.run:
    - qmail_service.start:
      - supervisor: bootscript
      - home: {{ qmail.lookup.home }}
    - unless:
      - fun: qmail_service.send_pid
        supervisor: bootscript
    - require:
      - file: qmail-service-send-run-file-managed
      - file: qmail-service-send-bootscript-file-blockreplace
      - file: qmail-build-rc-file-managed
      - qmail_control: me

qmail-service-send-restart-module-run:
  module.run:
    - qmail_service.restart:
      - supervisor: bootscript
      - home: {{ qmail.lookup.home }}
    - require:
      - module: qmail-service-send-start-module-run
    - onchanges:
      - file: qmail-service-send-run-file-managed
      - file: qmail-build-rc-file-managed
      - qmail_build: qmail-build-tree-qmail_build-installed
{%- for name in qmail.control_reload.restart %}
      - qmail_control: {{ name }}
{%- endfor %}
