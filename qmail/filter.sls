# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail:filter on a spool: the chain qmail-smtpd runs through QMAILQUEUE
# (qmail.service's smtpd wrapper exports it) before qmail-queue: the
# daemon qmail-filterd (under qmail:service:supervisor) with filter.json,
# its client qmail-filter (the QMAILQUEUE program) with qmail-filter.conf,
# the packages of its steps, DKIM keys (owned by qmaild, 0400; the DNS
# records to publish in the keys state's comment) and spamd for the
# spamassassin step.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set filter = qmail.filter %}
{%- set files = filter.files %}
{%- set daemon = filter.daemon %}
{%- set supervisor = qmail.service.supervisor %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}
{%- set sid = "qmail-filter-daemon" %}

{%- if filter.active %}
{%-   if supervisor == "daemontools" %}

include:
  - {{ (tplroot ~ ".service.send") | json }}
{%-   endif %}
{%-   if filter.packages %}

qmail-filter-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ filter.packages | json }}
    - require_in:
      - file: qmail-filter-daemon-file-managed
{%-   endif %}

# The ledger (issue 19): the folder is the formula's when it makes it (or it
# holds only the formula's files); qmail.filter.clean removes only then.
qmail-filter-dir-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ files.dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.filter_dir | json }}
    - require_in:
      - file: qmail-filter-dir-file-directory

qmail-filter-dir-file-directory:
  file.directory:
    - name: {{ files.dir | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

# Written before the program that reads it: a new step is in the file
# before the next message meets it.
qmail-filter-config-file-managed:
  file.managed:
    - name: {{ files.config | json }}
    - contents: {{ (filter.config | json) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - require:
      - file: qmail-filter-dir-file-directory
{%-   if filter.dkim_keys %}
      - qmail_dkim: qmail-filter-dkim-keys-qmail_dkim-keys_managed

qmail-filter-dkim-keys-qmail_dkim-keys_managed:
  qmail_dkim.keys_managed:
    - name: {{ files["keys"] | json }}
    - keys: {{ filter.dkim_keys | json }}
    - user: {{ qmail.lookup.users.qmaild | json }}
    - require:
      - file: qmail-filter-dir-file-directory
{%-   endif %}

# The client, once per message: its settings are data beside it.
qmail-filter-client-conf-file-managed:
  file.managed:
    - name: {{ files.client_conf | json }}
    - contents: {{ filter.client_conf | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - require:
      - file: qmail-filter-dir-file-directory

# The chain, kept running; filter.json and the keys it reads per message.
qmail-filter-daemon-file-managed:
  file.managed:
    - name: {{ files.daemon | json }}
    - source: {{ salt["qmail_tofs.files_switch"](["filter/qmail-filterd"], "qmail-filterd", qmail.tofs) | json }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - context:
        python: {{ qmail.lookup.filter.python | json }}
    - require:
      - file: qmail-filter-config-file-managed

# The ledger (issue 19): the socket's folder is the formula's when the
# daemon has not made it yet; qmail.filter.clean removes it then.
qmail-filter-socket-dir-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ daemon.socket_dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ [daemon.socket_name] | json }}
    - require_in:
      - qmail_service: {{ (sid ~ "-qmail_service-running") | json }}
{%-   set context = {"python": qmail.lookup.filter.python, "daemon": files.daemon,
                     "socket": daemon.socket, "user": daemon.user} %}
{%-   if supervisor == "systemd" %}

{{ (sid ~ "-unit-file-managed") | json }}:
  file.managed:
    - name: {{ (paths.unit_dir ~ "/" ~ daemon.name ~ ".service") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["filter/qmail-filterd.service"], "qmail-filterd.service",
                   context, qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'

{{ (sid ~ "-qmail_service-enabled") | json }}:
  qmail_service.enabled:
    - name: {{ daemon.name | json }}
    - supervisor: systemd
    - require:
      - file: {{ (sid ~ "-unit-file-managed") | json }}
{%-   else %}
{%-     set dir = home ~ "/supervise/" ~ daemon.name %}
{%-     set log_dir = paths.log_dir ~ "/" ~ daemon.name %}

{{ (sid ~ "-run-file-managed") | json }}:
  file.managed:
    - name: {{ (dir ~ "/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["filter/filterd-run"], "filterd-run",
                   context, qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

# multilog as qmaill into <log_dir>/qmail-filterd, as qmail-send's.
{{ (sid ~ "-log-dir-file-directory") | json }}:
  file.directory:
    - name: {{ log_dir | json }}
    - user: {{ qmail.lookup.users.qmaill | json }}
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0750'
    - makedirs: true

{{ (sid ~ "-log-run-file-managed") | json }}:
  file.managed:
    - name: {{ (dir ~ "/log/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/log-run"], "log-run", {
                     "daemontools_bin": paths.daemontools_bin, "user": qmail.lookup.users.qmaill,
                     "size": qmail.service.log.size, "count": qmail.service.log.count,
                     "log_dir": log_dir},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

{{ (sid ~ "-link-file-symlink") | json }}:
  file.symlink:
    - name: {{ (paths.service_dir ~ "/" ~ daemon.name) | json }}
    - target: {{ dir | json }}
    - require:
      - file: {{ (sid ~ "-run-file-managed") | json }}
      - file: {{ (sid ~ "-log-run-file-managed") | json }}
      - file: {{ (sid ~ "-log-dir-file-directory") | json }}
      - file: qmail-filter-daemon-file-managed
      - service: qmail-service-svscan-service-running

{{ (sid ~ "-log-qmail_service-log_restarted") | json }}:
  qmail_service.log_restarted:
    - name: {{ daemon.name | json }}
    - supervisor: daemontools
    - service_dir: {{ paths.service_dir | json }}
    - daemontools_bin: {{ paths.daemontools_bin | json }}
    - require:
      - file: {{ (sid ~ "-link-file-symlink") | json }}
    - watch:
      - file: {{ (sid ~ "-log-run-file-managed") | json }}
{%-   endif %}

# A new program restarts it; filter.json and the keys are read per message.
{{ (sid ~ "-qmail_service-running") | json }}:
  qmail_service.running:
    - name: {{ daemon.name | json }}
    - supervisor: {{ supervisor | json }}
    - home: {{ home | json }}
    - service_dir: {{ paths.service_dir | json }}
    - daemontools_bin: {{ paths.daemontools_bin | json }}
    - enable: false
    - require:
      - file: qmail-filter-config-file-managed
{%-   if supervisor == "daemontools" %}
      - file: {{ (sid ~ "-link-file-symlink") | json }}
{%-   endif %}
    - watch:
      - file: qmail-filter-daemon-file-managed
{%-   if supervisor == "systemd" %}
      - file: {{ (sid ~ "-unit-file-managed") | json }}
{%-   else %}
      - file: {{ (sid ~ "-run-file-managed") | json }}
{%-   endif %}

# qmail-smtpd's wrappers require this: the chain runs before they name it.
qmail-filter-program-file-managed:
  file.managed:
    - name: {{ files.program | json }}
    - source: {{ salt["qmail_tofs.files_switch"](["filter/qmail-filter"], "qmail-filter", qmail.tofs) | json }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - context:
        perl: {{ qmail.lookup.filter.perl | json }}
    - require:
      - file: qmail-filter-client-conf-file-managed
      - qmail_service: {{ (sid ~ "-qmail_service-running") | json }}
{%-   if filter.sendmail %}

# The host's sendmail front end (qmail.sendmail links it): qmail's own,
# with QMAILQUEUE exported, so that local injection is filtered and signed.
qmail-filter-sendmail-file-managed:
  file.managed:
    - name: {{ filter.sendmail.path | json }}
    - contents: {{ salt["qmail_tofs.contents"](["filter/sendmail"], "sendmail-wrapper", {
                     "qmailqueue": filter.sendmail.qmailqueue,
                     "sendmail": filter.sendmail.sendmail},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - require:
      - file: qmail-filter-program-file-managed
{%-   endif %}
{%-   if filter.spamd %}

qmail-filter-spamd-service-running:
  service.running:
    - name: {{ filter.spamd | json }}
    - enable: true
    - require:
      - pkg: qmail-filter-packages-pkg-installed
    - require_in:
      - file: qmail-filter-daemon-file-managed
{%-   endif %}
{%- endif %}
