# -*- coding: utf-8 -*-
# vim: ft=sls
# Seed §2: stop sendmail, keep it from starting at boot, chmod 0 its binary
# and keep it as sendmail.bak; §3: qmail's front end in its place. Each step
# saves what it changes (lookup:sendmail_journal) for qmail.sendmail.clean.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set sendmail = qmail.sendmail %}
{#- With qmail:filter the front end is its wrapper (qmail.filter writes it). #}
{%- set wrapper = qmail.filter.sendmail %}
{%- if wrapper %}

include:
  - {{ (tplroot ~ ".filter") | json }}
{%- endif %}

qmail-sendmail-processes-qmail_sendmail-stopped:
  qmail_sendmail.stopped:
    - name: sendmail
    - services: {{ qmail.lookup.sendmail_services | json }}
    - paths: {{ qmail.lookup.sendmail_paths | json }}
    - ports: {{ qmail.lookup.sendmail_ports | json }}
    - frontend: {{ sendmail.frontend | json }}
    - also: {{ sendmail.also | json }}
    - journal: {{ sendmail.journal | json }}

qmail-sendmail-boot-qmail_sendmail-boot_disabled:
  qmail_sendmail.boot_disabled:
    - name: sendmail
    - method: {{ qmail.lookup.sendmail_boot | json }}
    - services: {{ qmail.lookup.sendmail_services | json }}
    - path: {{ sendmail.boot_path | json }}
    - journal: {{ sendmail.journal | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-processes-qmail_sendmail-stopped

{%- for path in qmail.lookup.sendmail_paths %}

{{ ("qmail-sendmail-binary-qmail_sendmail-neutralised-" ~ path) | json }}:
  qmail_sendmail.neutralised:
    - name: {{ path | json }}
    - frontend: {{ sendmail.frontend | json }}
    - also: {{ sendmail.also | json }}
    - sendmail_paths: {{ qmail.lookup.sendmail_paths | json }}
    - journal: {{ sendmail.journal | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-processes-qmail_sendmail-stopped
{%- endfor %}

{#- Messages still in sendmail's queues go to qmail with their envelope,
    once sendmail can no longer run (notqmail's REMOVE.sendmail: flush the
    queue before switching). #}

qmail-sendmail-queue-qmail_mqueue-handed_over:
  qmail_mqueue.handed_over:
    - name: sendmail's queue
    - queues: {{ qmail.lookup.sendmail_queues | json }}
    - qmail_queue: {{ (qmail.lookup.home ~ "/bin/qmail-queue") | json }}
    - lock: {{ sendmail.mqueue_lock | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-processes-qmail_sendmail-stopped
      - qmail_sendmail: qmail-sendmail-binary-*

{%- for alt in sendmail.alternatives %}

{{ ("qmail-sendmail-alternative-qmail_sendmail-alternative_chosen-" ~ alt.name) | json }}:
  qmail_sendmail.alternative_chosen:
    - name: {{ alt.name | json }}
    - link: {{ alt.link | json }}
    - frontend: {{ sendmail.frontend | json }}
    - priority: {{ alt.priority | json }}
    - slaves: {{ alt.slaves | json }}
    - journal: {{ sendmail.journal | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-binary-*
{%-   if wrapper %}
      - file: qmail-filter-sendmail-file-managed
{%-   endif %}
{%- endfor %}

{%- for path in qmail.lookup.sendmail_links %}

{{ ("qmail-sendmail-link-qmail_sendmail-frontend_linked-" ~ path) | json }}:
  qmail_sendmail.frontend_linked:
    - name: {{ path | json }}
    - frontend: {{ sendmail.frontend | json }}
    - sendmail_paths: {{ qmail.lookup.sendmail_paths | json }}
    - links: {{ qmail.lookup.sendmail_links | json }}
    - alternative_links: {{ sendmail.alternative_links | json }}
    - journal: {{ sendmail.journal | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-binary-*
{%-   if wrapper %}
      - file: qmail-filter-sendmail-file-managed
{%-   endif %}
{%- endfor %}

{%- for path in sendmail.mailer_conf %}

qmail-sendmail-mailer-conf-qmail_sendmail-mailer_conf_managed:
  qmail_sendmail.mailer_conf_managed:
    - name: {{ path | json }}
    - frontend: {{ sendmail.frontend | json }}
    - qread: {{ sendmail.qread | json }}
    - journal: {{ sendmail.journal | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-binary-*
{%-   if wrapper %}
      - file: qmail-filter-sendmail-file-managed
{%-   endif %}
{%- endfor %}

{#- Debian: a package that provides mail-transport-agent, built with
    dpkg-deb (no equivs needed), so apt pulls in no other MTA. While an
    installed package provides it already (sendmail-bin, which also
    conflicts with any other provider), it is built but not installed. #}
{%- for package in sendmail.mta_package %}

qmail-sendmail-mta-package-qmail_mta_package-built:
  qmail_mta_package.built:
    - name: {{ package.deb | json }}
    - root: {{ package.dir | json }}
    - control: {{ [
        'Package: ' ~ package.name,
        'Version: 1.0',
        'Section: mail',
        'Priority: optional',
        'Architecture: all',
        'Maintainer: ' ~ qmail.owns.made.mta_package,
        'Provides: mail-transport-agent',
        "Description: qmail, installed from source, is this host's MTA",
        ' Installed by the qmail Salt formula: it provides mail-transport-agent',
        ' so that apt pulls in no other MTA for packages that need one.',
        ' qmail itself lives in ' ~ qmail.lookup.home ~ ', outside dpkg.',
      ] | json }}

qmail-sendmail-mta-package-qmail_mta_package-installed:
  qmail_mta_package.installed:
    - name: {{ package.name | json }}
    - source: {{ package.deb | json }}
    - require:
      - qmail_mta_package: qmail-sendmail-mta-package-qmail_mta_package-built

{#- The ledger (issue 19): qmail.sendmail.clean purges only the package the
    formula built and installed (its Maintainer says so). #}
qmail-sendmail-mta-package-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ package.name | json }}
    - kind: packages
    - ledger: {{ qmail.lookup.ledger | json }}
    - maintainer: {{ qmail.owns.made.mta_package | json }}
    - require:
      - qmail_mta_package: qmail-sendmail-mta-package-qmail_mta_package-installed
{%- endfor %}
