# -*- coding: utf-8 -*-
# vim: ft=sls
# The spool's qmail-smtpd under tcpserver: relay rules for
# qmail:relay_clients compiled by tcprules (only when they changed), the run
# script (refuses to start without rcpthosts) and the per-connection wrapper
# (refuses mail without rcpthosts). No inetd line may compete for the port.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set paths = qmail.lookup.service %}
{%- set rules = paths.tcp_rules %}

include:
  - {{ tplroot }}.control
  - {{ tplroot }}.service.smtpd.off.inetd

qmail-service-smtpd-rules-file-managed:
  file.managed:
    - name: {{ rules }}
    - source: salt://{{ tplroot }}/files/service/tcp.smtp
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0644'
    - makedirs: True
    - context:
        rules: {{ rules }}
        tcp_rules: {{ qmail.service.tcp_rules | json }}

qmail-service-smtpd-rules-cmd-run:
  cmd.run:
    - name: {{ paths.ucspi_bin }}/tcprules {{ rules }}.cdb {{ rules }}.tmp < {{ rules }}
    - onchanges:
      - file: qmail-service-smtpd-rules-file-managed

# The source did not change but the compiled rules are gone.
qmail-service-smtpd-rules-cdb-cmd-run:
  cmd.run:
    - name: {{ paths.ucspi_bin }}/tcprules {{ rules }}.cdb {{ rules }}.tmp < {{ rules }}
    - creates: {{ rules }}.cdb
    - require:
      - cmd: qmail-service-smtpd-rules-cmd-run

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

qmail-service-smtpd-run-file-managed:
  file.managed:
    - name: {{ qmail.lookup.home }}/supervise/qmail-smtpd/run
    - source: salt://{{ tplroot }}/files/service/smtpd-run
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup }}
    - mode: '0755'
    - makedirs: True
    - context:
        home: {{ qmail.lookup.home }}
        rules: {{ rules }}
        qmaild: {{ qmail.lookup.users.qmaild }}
        ucspi_bin: {{ paths.ucspi_bin }}
        port: {{ qmail.service.smtpd_port }}
        concurrency: {{ qmail.service.smtpd_concurrency }}
