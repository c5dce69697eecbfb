# -*- coding: utf-8 -*-
# vim: ft=sls
# Stop and disable what qmail.service started, under every supervisor (the
# pillar may have changed since), and remove its files. The queue stays:
# qmail-send is stopped with TERM, which lets deliveries under way finish.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}
{%- set service_args = {"home": home, "service_dir": paths.service_dir,
                        "daemontools_bin": paths.daemontools_bin} %}

{#- qmail-smtpd first (it hands mail to qmail-filterd and qmail-send), then
    qmail-filterd, then qmail-send. #}
{%- for name, supervisors in [("smtpd", ["systemd", "daemontools"]),
                              ("smtpsd", ["systemd", "daemontools"]),
                              ("filterd", ["systemd", "daemontools"]),
                              ("send", ["systemd", "daemontools", "bootscript"])] %}
{%-   for under in supervisors %}

{{ ("qmail-service-clean-" ~ name ~ "-" ~ under ~ "-qmail_service-dead") | json }}:
  qmail_service.dead:
    - name: {{ ("qmail-" ~ name) | json }}
    - supervisor: {{ under | json }}
{%-     for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-     endfor %}
{%-     if name in ("send", "filterd") %}
    - require:
      - qmail_service: qmail-service-clean-smtpd-*
      - qmail_service: qmail-service-clean-smtpsd-*
{%-       if under == "bootscript" %}
      {#- qmail-send found by name: whatever systemd or svscan ran is gone first #}
      - qmail_service: qmail-service-clean-send-systemd-qmail_service-dead
      - qmail_service: qmail-service-clean-send-daemontools-qmail_service-dead
      - service: qmail-service-clean-svscan-service-dead
{%-       endif %}
{%-     endif %}
{%-   endfor %}
{%- endfor %}

qmail-service-clean-svscan-service-dead:
  service.dead:
    - name: qmail-svscan
    - enable: false
    - onlyif:
      # absent unit: nothing to stop (and test mode predicts nothing)
      - fun: service.available
        args:
          - qmail-svscan
    - require:
      - qmail_service: qmail-service-clean-send-systemd-qmail_service-dead
      - qmail_service: qmail-service-clean-send-daemontools-qmail_service-dead

qmail-service-clean-bootscript-file-replace:
  file.replace:
    - name: {{ paths.boot_script | json }}
    - pattern: '^# BEGIN qmail-send \(managed by Salt[^\n]*\n(?:[^\n]*\n)*?# END qmail-send\n?'
    - repl: ''
    - flags: ['MULTILINE']
    - bufsize: file
    - ignore_if_missing: true
    - backup: false

qmail-service-clean-inetd-line-file-replace:
  file.replace:
    - name: {{ paths.inetd_conf | json }}
    - pattern: '^[ \t]*[^#\s][^\n]*qmail-smtpd[^\n]*\n?'
    - repl: ''
    - flags: ['MULTILINE']
    - ignore_if_missing: true
    - backup: false

qmail-service-clean-inetd-qmail_service-inetd_reloaded:
  qmail_service.inetd_reloaded:
    - name: {{ paths.inetd_conf | json }}
    - missing_ok: true
    - watch:
      - file: qmail-service-clean-inetd-line-file-replace

# The files qmail.service wrote (the queue and qmail's own files stay).
{%- for file in [paths.unit_dir ~ "/qmail-send.service",
                 paths.unit_dir ~ "/qmail-smtpd.service",
                 paths.unit_dir ~ "/qmail-smtpsd.service",
                 paths.unit_dir ~ "/qmail-filterd.service",
                 paths.unit_dir ~ "/qmail-svscan.service",
                 paths.service_dir ~ "/qmail-send",
                 paths.service_dir ~ "/qmail-smtpd",
                 paths.service_dir ~ "/qmail-smtpsd",
                 paths.service_dir ~ "/qmail-filterd",
                 home ~ "/supervise",
                 qmail.beacon.file] %}

{{ ("qmail-service-clean-" ~ (file | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}:
  file.absent:
    - name: {{ file | json }}
    - require:
      - service: qmail-service-clean-svscan-service-dead
      - qmail_service: qmail-service-clean-send-*
      - qmail_service: qmail-service-clean-filterd-*
{%- endfor %}

{#- Folders and files at places the pillar names: only what the ledger lists
    (the formula made them; issue 19). #}
{%- set made = qmail.owns.made %}
{%- for kind, file, proof in [("dirs", paths.tls_dir, {"only": made.tls_dir}),
                              ("files", paths.tcp_rules, {"marker": made.tcp_rules}),
                              ("files", paths.tcp_rules ~ ".cdb", {})] %}

{{ ("qmail-service-clean-" ~ (file | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}:
  qmail_ledger.removed:
    - name: {{ file | json }}
    - kind: {{ kind | json }}
    - ledger: {{ qmail.lookup.ledger | json }}
{%-   for key, value in proof | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%-   endfor %}
    - require:
      - service: qmail-service-clean-svscan-service-dead
      - qmail_service: qmail-service-clean-send-*
{%- endfor %}

{%- if paths.ipv6_package %}

{#- qmail:ipv6's tcpserver package, only if the ledger lists it (the formula
    installed it; whatever the pillar says now), then the ucspi-tcp it
    replaced, if the ledger lists it as displaced. #}
qmail-service-clean-ipv6-package-qmail_ledger-removed:
  qmail_ledger.removed:
    - name: {{ paths.ipv6_package | json }}
    - kind: packages
    - ledger: {{ qmail.lookup.ledger | json }}
    - require:
      - service: qmail-service-clean-svscan-service-dead
      - qmail_service: qmail-service-clean-smtpd-*
      - qmail_service: qmail-service-clean-smtpsd-*
{%-   for package in paths.ipv6_replaces %}

{{ ("qmail-service-clean-ipv6-displaced-" ~ package ~ "-qmail_ledger-restored") | json }}:
  qmail_ledger.restored:
    - name: {{ package | json }}
    - ledger: {{ qmail.lookup.ledger | json }}
    - require:
      - qmail_ledger: qmail-service-clean-ipv6-package-qmail_ledger-removed
{%-   endfor %}
{%- endif %}

qmail-service-clean-systemd-daemon-reload-cmd-run:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: {{ ("qmail-service-clean-" ~ ((paths.unit_dir ~ "/qmail-send.service") | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}
      - file: {{ ("qmail-service-clean-" ~ ((paths.unit_dir ~ "/qmail-smtpd.service") | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}
      - file: {{ ("qmail-service-clean-" ~ ((paths.unit_dir ~ "/qmail-smtpsd.service") | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}
      - file: {{ ("qmail-service-clean-" ~ ((paths.unit_dir ~ "/qmail-filterd.service") | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}
      - file: {{ ("qmail-service-clean-" ~ ((paths.unit_dir ~ "/qmail-svscan.service") | replace("/", "-") | trim("-")) ~ "-file-absent") | json }}
