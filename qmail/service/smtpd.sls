# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-smtpd, by qmail:service:smtpd on a spool: under tcpserver (relay
# rules for qmail:relay_clients compiled by tcprules, supervised like
# qmail-send) or from inetd (the seed's way). A client takes no mail
# (seed §5.1): no qmail-smtpd under any supervisor, no line in inetd.conf.
# Both ways go through the wrapper that refuses mail while rcpthosts is
# missing (an open relay otherwise).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
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
{%-   if qmail.tls.active %}
  - {{ (tplroot ~ ".service.tls") | json }}
{%-   endif %}
{%-   if qmail.submission.enable %}
  - {{ (tplroot ~ ".service.submission") | json }}
{%-   endif %}
{%-   if qmail.filter.active %}
  - {{ (tplroot ~ ".filter") | json }}
{%-   endif %}

qmail-service-smtpd-wrapper-file-managed:
  file.managed:
    - name: {{ (home ~ "/supervise/qmail-smtpd/smtpd") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/smtpd"], "smtpd", {
                     "home": home, "qmailqueue": qmail.filter.qmailqueue},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true
{%-   if qmail.filter.active %}
    # The chain is in place before qmail-smtpd is told to run it.
    - require:
      - file: qmail-filter-program-file-managed
{%-   endif %}
{%- endif %}

{%- if mode == "tcpserver" %}

{#- The ledger (issue 19): the rules and their .cdb are the formula's when it
    writes them first (or the rules carry its header, and the .cdb is compiled
    from rules it lists: a host of a release before the ledger); clean removes
    only then. #}
{%-   for file, marker in [(rules, qmail.owns.made.tcp_rules), (rules ~ ".cdb", "")] %}

{{ ("qmail-service-smtpd-rules-qmail_ledger-recorded-" ~ loop.index) | json }}:
  qmail_ledger.recorded:
    - name: {{ file | json }}
    - kind: files
    - ledger: {{ qmail.lookup.ledger | json }}
{%-     if marker %}
    - marker: {{ marker | json }}
{%-     else %}
    - source: {{ rules | json }}
    - require:
      - qmail_ledger: qmail-service-smtpd-rules-qmail_ledger-recorded-1
{%-     endif %}
    - require_in:
      - file: qmail-service-smtpd-rules-file-managed
{%-   endfor %}

qmail-service-smtpd-rules-file-managed:
  file.managed:
    - name: {{ rules | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/tcp.smtp"], "tcp.smtp", {
                     "rules": rules, "tcp_rules": qmail.service.tcp_rules},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - makedirs: true

qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled:
  qmail_service.tcp_rules_compiled:
    - name: {{ rules | json }}
    - ucspi_bin: {{ paths.ucspi_bin | json }}
    - watch:
      - file: qmail-service-smtpd-rules-file-managed
{%-   if qmail.service.ipv6 %}
    # ucspi-tcp's tcprules cannot parse an IPv6 rule.
    - require:
      - pkg: qmail-service-smtpd-ipv6-package-pkg-installed

{#- qmail:ipv6: a tcpserver that listens on IPv6 too (Debian's
    ucspi-tcp-ipv6, which replaces ucspi-tcp). The ledger (issue 19): the
    package is the formula's only when it installs it (not installed
    before); qmail.service.clean purges only then. #}
qmail-service-smtpd-ipv6-package-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ qmail.service.ipv6_package | json }}
    - kind: packages
    - ledger: {{ qmail.lookup.ledger | json }}
    - require_in:
      - pkg: qmail-service-smtpd-ipv6-package-pkg-installed

{#- What installing it removes (ucspi-tcp): listed while still installed,
    so that qmail.service.clean installs it again. #}
{%-     for package in paths.ipv6_replaces %}

{{ ("qmail-service-smtpd-ipv6-displaces-" ~ package ~ "-qmail_ledger-recorded") | json }}:
  qmail_ledger.recorded:
    - name: {{ package | json }}
    - kind: displaced
    - ledger: {{ qmail.lookup.ledger | json }}
    - require_in:
      - pkg: qmail-service-smtpd-ipv6-package-pkg-installed
{%-     endfor %}

qmail-service-smtpd-ipv6-package-pkg-installed:
  pkg.installed:
    - name: {{ qmail.service.ipv6_package | json }}
{%-   endif %}
{%- endif %}

{#- qmail-smtpd (port 25; STARTTLS with qmail:tls) and qmail-smtpsd (implicit
    TLS, qmail:tls:smtps): one service each, the same relay rules. #}
{%- for svc in qmail.service.smtpd_services %}
{%-   set prefix = "qmail-service-" ~ svc.name[6:] %}
{%-   set dir = home ~ "/supervise/" ~ svc.name %}

# The tcpserver command line as data (extend it through the run script's
# TOFS override, or with more options here).
{{ (prefix ~ "-run-file-managed") | json }}:
  file.managed:
    - name: {{ (dir ~ "/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/smtpd-run"], "smtpd-run", {
                     "home": home, "rules": rules, "qmaild": qmail.lookup.users.qmaild,
                     "ucspi_bin": paths.ucspi_bin, "port": svc.port,
                     "concurrency": qmail.service.smtpd_concurrency, "program": svc.program,
                     "drop": svc.drop, "tls": svc.tls, "listen": qmail.service.listen},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true
{%-   if qmail.service.ipv6 %}
    # The new run script (listening on IPv6) restarts a tcpserver of the
    # IPv6 package.
    - require:
      - pkg: qmail-service-smtpd-ipv6-package-pkg-installed
{%-   endif %}

{%-   if supervisor == "systemd" %}

{{ (prefix ~ "-unit-file-managed") | json }}:
  file.managed:
    - name: {{ (paths.unit_dir ~ "/" ~ svc.name ~ ".service") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/qmail-smtpd.service"], "qmail-smtpd.service", {
                     "home": home, "port": svc.port, "service": svc.name, "tls": svc.tls},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'

{%-   elif supervisor == "daemontools" %}

{%-     set log = qmail.service.log %}
{%-     set log_dir = paths.log_dir ~ "/" ~ svc.name %}

# multilog as qmaill into <log_dir>/<service> (Life with qmail's layout).
{{ (prefix ~ "-log-dir-file-directory") | json }}:
  file.directory:
    - name: {{ log_dir | json }}
    - user: {{ qmail.lookup.users.qmaill | json }}
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0750'
    - makedirs: true

{{ (prefix ~ "-log-run-file-managed") | json }}:
  file.managed:
    - name: {{ (dir ~ "/log/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/log-run"], "log-run", {
                     "daemontools_bin": paths.daemontools_bin, "user": qmail.lookup.users.qmaill,
                     "size": log.size, "count": log.count, "log_dir": log_dir},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

{{ (prefix ~ "-link-file-symlink") | json }}:
  file.symlink:
    - name: {{ (paths.service_dir ~ "/" ~ svc.name) | json }}
    - target: {{ dir | json }}
    - require:
      - qmail_control: qmail-control-file-managed-rcpthosts
      - qmail_service: qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: {{ (prefix ~ "-run-file-managed") | json }}
      - file: {{ (prefix ~ "-log-run-file-managed") | json }}
      - file: {{ (prefix ~ "-log-dir-file-directory") | json }}
      - file: qmail-service-smtpd-inetd-no-line-file-replace
      - service: qmail-service-svscan-service-running
{%-     if svc.tls != "none" %}
      - qmail_tls: qmail-service-tls-pem-qmail_tls-pem_managed
{%-     endif %}
{%-   endif %}

{%-   if supervisor == "systemd" %}

# Boot apart from running: a change there must not stand in for a restart.
{{ (prefix ~ "-qmail_service-enabled") | json }}:
  qmail_service.enabled:
    - name: {{ svc.name | json }}
    - supervisor: systemd
    - require:
      - file: {{ (prefix ~ "-unit-file-managed") | json }}
{%-   endif %}

{{ (prefix ~ "-qmail_service-running") | json }}:
  qmail_service.running:
    - name: {{ svc.name | json }}
    - supervisor: {{ supervisor | json }}
{%-   for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-   endfor %}
    - enable: false
    - require:
      - qmail_control: qmail-control-file-managed-rcpthosts
      - qmail_service: qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled
      - file: qmail-service-smtpd-wrapper-file-managed
      - file: qmail-service-smtpd-inetd-no-line-file-replace
{%-   if svc.tls != "none" %}
      # tlswrapper reads the PEM per connection: a new one needs no restart.
      - qmail_tls: qmail-service-tls-pem-qmail_tls-pem_managed
{%-   endif %}
{%-   if svc.name == "qmail-smtpsd" and qmail.submission.enable %}
      # Read per connection (passwd per login): changes need no restart.
      - qmail_submission: qmail-service-submission-passwd-qmail_submission-passwd_managed
      - file: qmail-service-submission-submission-file-managed
      - file: qmail-service-submission-authenticated-file-managed
{%-     if paths.cvm_package %}
      - pkg: qmail-service-submission-cvm-pkg-installed
{%-     endif %}
{%-   endif %}
{%-   if supervisor == "daemontools" %}
      - file: {{ (prefix ~ "-link-file-symlink") | json }}
{%-   endif %}
    - watch:
      - file: {{ (prefix ~ "-run-file-managed") | json }}
{%-   if supervisor == "systemd" %}
      - file: {{ (prefix ~ "-unit-file-managed") | json }}
{%-   elif supervisor == "daemontools" %}

# multilog reads its size and count at start: restart it, not the service.
{{ (prefix ~ "-log-qmail_service-log_restarted") | json }}:
  qmail_service.log_restarted:
    - name: {{ svc.name | json }}
    - supervisor: {{ supervisor | json }}
    - service_dir: {{ paths.service_dir | json }}
    - daemontools_bin: {{ paths.daemontools_bin | json }}
    - require:
      - file: {{ (prefix ~ "-link-file-symlink") | json }}
    - watch:
      - file: {{ (prefix ~ "-log-run-file-managed") | json }}
{%-   endif %}
{%- endfor %}

{#- Whatever runs no more: no qmail-smtpd on a client or under inetd, no
    qmail-smtpsd without qmail:tls:smtps, no qmail-filterd without
    qmail:filter, under whichever supervisor ran it. #}
{%- for name in qmail.service.smtpd_stopped %}
{%-   for under in ["systemd", "daemontools"] %}

{{ ("qmail-service-" ~ name[6:] ~ "-" ~ under ~ "-qmail_service-dead") | json }}:
  qmail_service.dead:
    - name: {{ name | json }}
    - supervisor: {{ under | json }}
{%-     for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-     endfor %}
{%-   endfor %}
{%- endfor %}

{#- Without qmail:submission, its files go (the passwd file holds hashes). #}
{%- if not qmail.submission.enable %}
{%-   for name, file in qmail.submission.files | dictsort %}

{{ ("qmail-service-submission-" ~ name ~ "-file-absent") | json }}:
  file.absent:
    - name: {{ file | json }}
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
