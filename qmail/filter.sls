# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail:filter on a spool: the chain qmail-smtpd runs through QMAILQUEUE
# (qmail.service's smtpd wrapper exports it) before qmail-queue: the
# formula's program, its filter.json, the packages of its steps, DKIM keys
# (owned by qmaild, 0400; the DNS records to publish in the keys state's
# comment) and spamd for the spamassassin step.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}
{%- set filter = qmail.filter %}
{%- set files = filter.files %}

{%- if filter.active %}
{%-   if filter.packages %}

qmail-filter-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ filter.packages | json }}
    - require_in:
      - file: qmail-filter-program-file-managed
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

qmail-filter-program-file-managed:
  file.managed:
    - name: {{ files.program | json }}
    - source: {{ salt["qmail_tofs.files_switch"](["filter/qmail-filter"], "qmail-filter", qmail.tofs) | json }}
    - template: jinja
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - context:
        python: {{ qmail.lookup.filter.python | json }}
    - require:
      - file: qmail-filter-config-file-managed
{%-   if filter.spamd %}

qmail-filter-spamd-service-running:
  service.running:
    - name: {{ filter.spamd | json }}
    - enable: true
    - require:
      - pkg: qmail-filter-packages-pkg-installed
    - require_in:
      - file: qmail-filter-program-file-managed
{%-   endif %}
{%- endif %}
