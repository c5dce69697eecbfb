# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail:submission: qmail-smtpsd (implicit TLS) requires SMTP AUTH through
# cvm-checkpassword and cvm-pwfile, from a passwd file of crypt hashes that
# qmaild alone reads (0400), replaced by rename: a user or password change
# takes effect at the next login, without a restart. Port 25 never offers
# AUTH. Included by qmail.service.smtpd.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set sub = qmail.submission %}
{%- set paths = qmail.lookup.service %}
{%- set home = qmail.lookup.home %}

{%- if paths.cvm_package %}

qmail-service-submission-cvm-pkg-installed:
  pkg.installed:
    - name: {{ paths.cvm_package | json }}
{%- endif %}

qmail-service-submission-passwd-qmail_submission-passwd_managed:
  qmail_submission.passwd_managed:
    - name: {{ sub.files.passwd | json }}
    - users: {{ sub.users | json }}
    - account: {{ qmail.lookup.users.qmaild | json }}
    - home: {{ sub.dir | json }}

{%- for name, file in [("submission", sub.files.wrapper),
                       ("authenticated", sub.files.authenticated)] %}

{{ ("qmail-service-submission-" ~ name ~ "-file-managed") | json }}:
  file.managed:
    - name: {{ file | json }}
    - contents: {{ salt["qmail_tofs.contents"](["service/" ~ name], name, {
                     "home": home, "passwd": sub.files.passwd,
                     "authenticated": sub.files.authenticated, "cvm_bin": paths.cvm_bin,
                     "qmailqueue": qmail.filter.qmailqueue},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - makedirs: true
{%-   if qmail.filter.active %}
    # Authenticated senders' mail goes through the chain (DKIM signs it).
    - require:
      - file: qmail-filter-program-file-managed
{%-   endif %}
{%- endfor %}
