# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-smtpd, by qmail:service:smtpd on a spool: under tcpserver (relay
# rules for qmail:relay_clients compiled by tcprules, supervised like
# qmail-send) or from inetd (the seed's way). A client takes no mail
# (seed §5.1): no qmail-smtpd under any supervisor, no line in inetd.conf.
# Both ways go through the wrapper that refuses mail while rcpthosts is
# missing (an open relay otherwise).
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- from tplroot ~ "/libsid.jinja" import sid %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set mode = qmail.service.smtpd_mode %}
{%- set supervisor = qmail.service.supervisor %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}
{%- set rules = paths.tcp_rules %}
{%- set service_args = {"home": home, "service_dir": paths.service_dir,
                        "daemontools_bin": paths.daemontools_bin} %}

{%- if mode != "off" %}

include:
  - {{ (tplroot ~ ".control") | json }}
{%-   if mode == "tcpserver" and supervisor == "daemontools" %}
  - {{ (tplroot ~ ".service.send") | json }}
{%-   endif %}

qmail-service-smtpd-wrapper-file-managed:
  file.managed:
    - name: {{ (home ~ "/supervise/qmail-smtpd/smtpd") | json }}
    - source: {{ files_switch(qmail.tofs, ["service/smtpd"], "smtpd") }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true
    - context:
        home: {{ home | json }}
{%- endif %}

{%- if mode == "tcpserver" %}

qmail-service-smtpd-rules-file-managed:
  file.managed:
    - name: {{ rules | json }}
    - source: {{ files_switch(qmail.tofs, ["service/tcp.smtp"], "tcp.smtp") }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - makedirs: true
    - context:
        rules: {{ rules | json }}
        tcp_rules: {{ qmail.service.tcp_rules | json }}

qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled:
  qmail_service.tcp_rules_compiled:
    - name: {{ rules | json }}
    - ucspi_bin: {{ paths.ucspi_bin | json }}
    - watch:
      - file: qmail-service-smtpd-rules-file-managed

# The tcpserver command line as data (extend it through the run script's
# TOFS override, or with more options here).
qmail-service-smtpd-run-file-managed:
  file.managed:
    - name: {{ (home ~ "/supervise/qmail-smtpd/run") | json }}
    - source: {{ files_switch(qmail.tofs, ["service/smtpd-run"], "smtpd-run") }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true
    - context:
        home: {{ home | json }}
        rules: {{ rules | json }}
        qmaild: {{ qmail.lookup.users.qmaild | json }}
        ucspi_bin: {{ paths.ucspi_bin | json }}
        port: {{ qmail.service.smtpd_port | json }}
        concurrency: {{ qmail.service.smtpd_concurrency | json }}
        program: {{ ["/bin/sh", home ~ "/supervise/qmail-smtpd/smtpd"] | json }}

{%-   if supervisor == "systemd" %}

qmail-service-smtpd-unit-file-managed:
  file.managed:
    - name: {{ (paths.unit_dir ~ "/qmail-smtpd.service") | json }}
    - source: {{ files_switch(qmail.tofs, ["service/qmail-smtpd.service"], "qmail-smtpd.service") }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - context:
        home: {{ home | json }}
        port: {{ qmail.service.smtpd_port | json }}

{%-   elif supervisor == "daemontools" %}

qmail-service-smtpd-link-file-symlink:
  file.symlink:
    - name: {{ (paths.service_dir ~ "/qmail-smtpd") | json }}
    - target: {{ (home ~ "/supervise/qmail-smtpd") | json }}
    - require:
      - qmail_control: qmail-control-file-managed-rcpthosts
      - qmail_service: qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-run-file-managed
      - file: qmail-service-smtpd-inetd-no-line-file-replace
      - service: qmail-service-svscan-service-running
{%-   endif %}

qmail-service-smtpd-qmail_service-running:
  qmail_service.running:
    - name: qmail-smtpd
    - supervisor: {{ supervisor | json }}
{%-   for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-   endfor %}
    - require:
      - qmail_control: qmail-control-file-managed-rcpthosts
      - qmail_service: qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-inetd-no-line-file-replace
{%-   if supervisor == "daemontools" %}
      - file: qmail-service-smtpd-link-file-symlink
{%-   endif %}
    - watch:
      - file: qmail-service-smtpd-run-file-managed
{%-   if supervisor == "systemd" %}
      - file: qmail-service-smtpd-unit-file-managed
{%-   endif %}

{%- else %}

# No qmail-smtpd under tcpserver, whichever supervisor ran it before.
{%-   for under in ["systemd", "daemontools"] %}

{{ sid(["qmail-service-smtpd-", under, "-qmail_service-dead"]) }}:
  qmail_service.dead:
    - name: qmail-smtpd
    - supervisor: {{ under | json }}
{%-     for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-     endfor %}
{%-   endfor %}
{%- endif %}

{%- if mode == "inetd" %}

qmail-service-smtpd-inetd-conf-file-managed:
  file.managed:
    - name: {{ paths.inetd_conf | json }}
    - replace: false
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'

qmail-service-smtpd-inetd-line-file-replace:
  file.replace:
    - name: {{ paths.inetd_conf | json }}
    - pattern: {{ ('^[ \t]*(smtp|' ~ qmail.service.smtpd_port ~ ')[ \t]+stream[ \t][^\n]*$') | json }}
    - repl: {{ qmail.service.inetd_line | json }}
    - flags: ['MULTILINE']
    - append_if_not_found: true
    - backup: false
    - require:
      - qmail_control: qmail-control-file-managed-rcpthosts
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-inetd-conf-file-managed
      - qmail_service: qmail-service-smtpd-systemd-qmail_service-dead
      - qmail_service: qmail-service-smtpd-daemontools-qmail_service-dead

{%- else %}

# No qmail-smtpd line in inetd.conf (seed §5.1: a client takes no mail; a
# spool's tcpserver needs the port).
qmail-service-smtpd-inetd-no-line-file-replace:
  file.replace:
    - name: {{ paths.inetd_conf | json }}
    - pattern: '^[ \t]*[^#\s][^\n]*qmail-smtpd[^\n]*\n?'
    - repl: ''
    - flags: ['MULTILINE']
    - ignore_if_missing: true
    - backup: false
{%- endif %}

qmail-service-smtpd-inetd-qmail_service-inetd_reloaded:
  qmail_service.inetd_reloaded:
    - name: {{ paths.inetd_conf | json }}
    - missing_ok: {{ (mode != "inetd") | json }}
    - watch:
{%- if mode == "inetd" %}
      - file: qmail-service-smtpd-inetd-line-file-replace
{%- else %}
      - file: qmail-service-smtpd-inetd-no-line-file-replace
{%- endif %}
