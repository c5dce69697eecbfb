# -*- coding: utf-8 -*-
# vim: ft=sls
# Give sendmail back exactly as it was, from what qmail.sendmail saved:
# links, alternatives, mailer.conf, the binary with its mode, the boot
# setting; sendmail is started again if it ran before, and gets the
# messages qmail had not delivered yet.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set sendmail = qmail.sendmail %}

qmail-sendmail-clean-qmail_sendmail-restored:
  qmail_sendmail.restored:
    - name: {{ sendmail.journal | json }}

{#- What qmail had not delivered yet goes to the restored sendmail
    (qmail.service.clean has stopped qmail-send by now). #}
qmail-sendmail-clean-queue-qmail_mqueue-handed_back:
  qmail_mqueue.handed_back:
    - name: {{ qmail.lookup.home | json }}
    - sendmail: {{ qmail.lookup.sendmail_paths[0] | json }}
    - lock: {{ sendmail.mqueue_lock | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-clean-qmail_sendmail-restored

{%- for package in sendmail.mta_package %}

{#- Only the package the ledger lists (the formula built and installed it). #}
qmail-sendmail-clean-mta-package-pkg-purged:
  qmail_ledger.removed:
    - name: {{ package.name | json }}
    - kind: packages
    - ledger: {{ qmail.lookup.ledger | json }}
    - maintainer: {{ qmail.owns.made.mta_package | json }}
    - require:
      - qmail_sendmail: qmail-sendmail-clean-qmail_sendmail-restored

qmail-sendmail-clean-mta-package-file-absent-dir:
  file.absent:
    - name: {{ package.dir | json }}

qmail-sendmail-clean-mta-package-file-absent-deb:
  file.absent:
    - name: {{ package.deb | json }}
{%- endfor %}
