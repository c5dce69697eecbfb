# -*- coding: utf-8 -*-
# vim: ft=sls
# The run script every supervisor starts qmail-send with: it execs <home>/rc.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

qmail-service-send-run-file-managed:
  file.managed:
    - name: {{ qmail.lookup.home }}/supervise/qmail-send/run
    - source: salt://{{ tplroot }}/files/service/send-run
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0755'
    - makedirs: True
    - context:
        home: {{ qmail.lookup.home }}
