# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail-send, from the run script that execs <home>/rc, under the supervisor
# of qmail:service:supervisor. Each reaction qmail-send(8) needs is a state
# that watches the changes calling for it (control files grouped by
# qmail.control_reload): restart (qmail_service.running: the files read only
# at start, rc, the run script, the unit, a reinstall), HUP (send_reloaded:
# locals, virtualdomains; same PID) and qmail-newmrh (morercpthosts_compiled,
# for qmail-smtpd). Files read per message are watched by nothing.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set supervisor = qmail.service.supervisor %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}
{#- Watched state ID -> the control file it manages, by reaction: what each
    reaction watches, and what it names as the reason of a change. #}
{%- set reasons = {"restart": {}, "hup": {}, "newmrh": {}} %}
{%- for action, found in reasons | dictsort %}
{%-   for name in qmail.control_reload[action] %}
{%-     set kind = "managed" if name in qmail.control_managed else "absent" %}
{%-     do found.update({"qmail-control-file-" ~ kind ~ "-" ~ name: name}) %}
{%-   endfor %}
{%- endfor %}
{#- What else qmail-send reads only at start: file states -> null. #}
{%- set restart_files = ["qmail-service-send-run-file-managed", "qmail-build-rc-file-managed"] %}
{%- if supervisor == "systemd" %}
{%-   do restart_files.append("qmail-service-send-unit-file-managed") %}
{%- endif %}
{%- for sid in restart_files %}
{%-   do reasons.restart.update({sid: none}) %}
{%- endfor %}
{%- do reasons.restart.update({"qmail-build-tree-qmail_build-installed": none}) %}
{%- set service_args = {"supervisor": supervisor, "home": home,
                        "service_dir": paths.service_dir,
                        "daemontools_bin": paths.daemontools_bin} %}

include:
  - {{ (tplroot ~ ".build") | json }}
  - {{ (tplroot ~ ".control") | json }}

qmail-service-send-run-file-managed:
  file.managed:
    - name: {{ (home ~ "/supervise/qmail-send/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/send-run"], "send-run", {
                     "home": home},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

{%- if supervisor == "systemd" %}

qmail-service-send-unit-file-managed:
  file.managed:
    - name: {{ (paths.unit_dir ~ "/qmail-send.service") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/qmail-send.service"], "qmail-send.service", {
                     "home": home},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'

{%- elif supervisor == "daemontools" %}

# svscan (a systemd unit of ours, enabled at boot) watches the service
# directory, which links to <home>/supervise/qmail-send.
qmail-service-svscan-dir-file-directory:
  file.directory:
    - name: {{ paths.service_dir | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'

qmail-service-svscan-unit-file-managed:
  file.managed:
    - name: {{ (paths.unit_dir ~ "/qmail-svscan.service") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/qmail-svscan.service"], "qmail-svscan.service", {
                     "service_dir": paths.service_dir, "daemontools_bin": paths.daemontools_bin},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'

qmail-service-svscan-service-running:
  service.running:
    - name: qmail-svscan
    - enable: true
    - require:
      - file: qmail-service-svscan-dir-file-directory
    - watch:
      - file: qmail-service-svscan-unit-file-managed

# multilog as qmaill into <log_dir>/qmail-send (Life with qmail's layout);
# rc then logs to its stdout, not to splogger.
qmail-service-send-log-dir-file-directory:
  file.directory:
    - name: {{ (paths.log_dir ~ "/qmail-send") | json }}
    - user: {{ qmail.lookup.users.qmaill | json }}
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0750'
    - makedirs: true

qmail-service-send-log-run-file-managed:
  file.managed:
    - name: {{ (home ~ "/supervise/qmail-send/log/run") | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/log-run"], "log-run", {
                     "daemontools_bin": paths.daemontools_bin, "user": qmail.lookup.users.qmaill,
                     "size": qmail.service.log.size, "count": qmail.service.log.count,
                     "log_dir": (paths.log_dir ~ "/qmail-send")},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true

qmail-service-send-link-file-symlink:
  file.symlink:
    - name: {{ (paths.service_dir ~ "/qmail-send") | json }}
    - target: {{ (home ~ "/supervise/qmail-send") | json }}
    - require:
      - file: qmail-service-send-run-file-managed
      - file: qmail-service-send-log-run-file-managed
      - file: qmail-service-send-log-dir-file-directory
      - file: qmail-build-rc-file-managed
      - service: qmail-service-svscan-service-running
      - qmail_control: qmail-control-file-managed-me
      # svscan starts qmail-send once linked: HUP only one that ran before.
      - qmail_service: qmail-service-send-hup-qmail_service-send_reloaded

{%- elif supervisor == "bootscript" %}

# The seed's way: the boot script starts <home>/rc in the background
# (qmail's INSTALL: `/var/qmail/rc &` in /etc/rc.local).
qmail-service-send-bootscript-file-managed:
  file.managed:
    - name: {{ paths.boot_script | json }}
    - contents: '#!/bin/sh'
    - replace: false
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'

qmail-service-send-bootscript-file-blockreplace:
  file.blockreplace:
    - name: {{ paths.boot_script | json }}
    - marker_start: '# BEGIN qmail-send (managed by Salt, qmail.service)'
    - marker_end: '# END qmail-send'
    - content: {{ (home ~ "/supervise/qmail-send/run </dev/null >/dev/null &") | json }}
    # after the #! line: an `exit 0` at the end must not skip it
    - insert_after_match: '^#!'
    - backup: false
    - require:
      - file: qmail-service-send-bootscript-file-managed
{%- endif %}

# HUP first: a restart due in the same run then follows it (harmless); on
# a host where qmail-send does not run yet there is nothing to HUP.
qmail-service-send-hup-qmail_service-send_reloaded:
  qmail_service.send_reloaded:
    - name: qmail-send
{%- for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%- endfor %}
    - reasons: {{ reasons.hup | json }}
{%- if reasons.hup %}
    - watch:
{%-   for sid in reasons.hup %}
      - qmail_control: {{ sid | json }}
{%-   endfor %}
{%- endif %}

{%- if supervisor == "systemd" %}

# Boot apart from running: a change there must not stand in for a restart.
qmail-service-send-qmail_service-enabled:
  qmail_service.enabled:
    - name: qmail-send
    - supervisor: systemd
    - require:
      - file: qmail-service-send-unit-file-managed
{%- endif %}

qmail-service-send-qmail_service-running:
  qmail_service.running:
    - name: qmail-send
{%- for key, value in service_args | dictsort %}
    - {{ key | json }}: {{ value | json }}
{%- endfor %}
    - enable: false
    - reasons: {{ reasons.restart | json }}
    - require:
      - qmail_control: qmail-control-file-managed-me
      - qmail_service: qmail-service-send-hup-qmail_service-send_reloaded
{%- if supervisor == "daemontools" %}
      - file: qmail-service-send-link-file-symlink
{%- elif supervisor == "bootscript" %}
      - file: qmail-service-send-bootscript-file-blockreplace
{%- endif %}
    - watch:
{%- for sid, file in reasons.restart | dictsort %}
{%-   if file %}
      - qmail_control: {{ sid | json }}
{%-   endif %}
{%- endfor %}
{%- for sid in restart_files %}
      - file: {{ sid | json }}
{%- endfor %}
      - qmail_build: qmail-build-tree-qmail_build-installed
{%- if supervisor == "daemontools" %}

# multilog reads its size and count at start: restart it, not qmail-send.
qmail-service-send-log-qmail_service-log_restarted:
  qmail_service.log_restarted:
    - name: qmail-send
    - supervisor: {{ supervisor | json }}
    - service_dir: {{ paths.service_dir | json }}
    - daemontools_bin: {{ paths.daemontools_bin | json }}
    - require:
      - file: qmail-service-send-link-file-symlink
    - watch:
      - file: qmail-service-send-log-run-file-managed
{%- endif %}

{#- qmail-smtpd reads morercpthosts only as morercpthosts.cdb. #}
{%- for name in qmail.service.newmrh_build %}

{{ ("qmail-service-send-" ~ name ~ "-cdb-qmail_service-morercpthosts_compiled") | json }}:
  qmail_service.morercpthosts_compiled:
    - name: {{ (home ~ "/control/" ~ name) | json }}
    - home: {{ home | json }}
    - require:
      - qmail_build: qmail-build-tree-qmail_build-installed
    - watch:
{%-   for sid, file in reasons.newmrh | dictsort %}
{%-     if file == name %}
      - qmail_control: {{ sid | json }}
{%-     endif %}
{%-   endfor %}
{%- endfor %}

{#- morercpthosts gone: its .cdb must go too (qmail-smtpd reads only that). #}
{%- for name in qmail.service.newmrh_drop %}

{{ ("qmail-service-send-" ~ name ~ "-cdb-file-absent") | json }}:
  file.absent:
    - name: {{ (home ~ "/control/" ~ name ~ ".cdb") | json }}
    - require:
      - qmail_control: {{ ("qmail-control-file-absent-" ~ name) | json }}
{%- endfor %}
