# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail:tls: the PEM file tlswrapper reads (private key, then certificate
# and chain), root's alone (0600 in a 0700 folder): tlswrapper's key process
# reads it as root, per connection, before it jails itself. From pillar, or
# self-signed for `me` by Salt's x509_v2 states (loaded as `x509`; renewed
# days_remaining before expiry). The file is replaced by rename: a session sees the old
# certificate or the new one, and the next session gets the new one without
# a restart (mail in flight is never cut).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set tls = qmail.tls %}
{%- set files = tls.files %}
{%- set paths = qmail.lookup.service %}

{%- if paths.tls_package %}

qmail-service-tls-package-pkg-installed:
  pkg.installed:
    - name: {{ paths.tls_package | json }}
{%- endif %}

# The ledger (issue 19): the folder is the formula's when it makes it (or it
# holds only the formula's files); qmail.service.clean removes only then.
qmail-service-tls-dir-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ files.dir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.tls_dir | json }}
    - require_in:
      - file: qmail-service-tls-dir-file-directory

qmail-service-tls-dir-file-directory:
  file.directory:
    - name: {{ files.dir | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0700'
    - makedirs: true

{%- if not tls.given %}

qmail-service-tls-key-x509-private_key_managed:
  x509.private_key_managed:
    - name: {{ files.key | json }}
    - algo: rsa
    - keysize: 2048
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0600'
    - require:
      - file: qmail-service-tls-dir-file-directory

qmail-service-tls-certificate-x509-certificate_managed:
  x509.certificate_managed:
    - name: {{ files.certificate | json }}
    - signing_private_key: {{ files.key | json }}
    - CN: {{ qmail.me | json }}
    - subjectAltName: {{ ("DNS:" ~ qmail.me) | json }}
    - extendedKeyUsage: serverAuth
    - days_valid: {{ tls.self_signed.days_valid | json }}
    - days_remaining: {{ tls.self_signed.days_remaining | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - require:
      - x509: qmail-service-tls-key-x509-private_key_managed
{%- endif %}

qmail-service-tls-pem-qmail_tls-pem_managed:
  qmail_tls.pem_managed:
    - name: {{ files.pem | json }}
    - host: {{ qmail.me | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
{%- if tls.given %}
    - key: {{ tls.key | json }}
    - certificate: {{ tls.certificate | json }}
{%- else %}
    - key_file: {{ files.key | json }}
    - certificate_file: {{ files.certificate | json }}
{%- endif %}
    - require:
      - file: qmail-service-tls-dir-file-directory
{%- if paths.tls_package %}
      - pkg: qmail-service-tls-package-pkg-installed
{%- endif %}
{%- if not tls.given %}
      - x509: qmail-service-tls-certificate-x509-certificate_managed
{%- endif %}
