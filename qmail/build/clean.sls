# -*- coding: utf-8 -*-
# vim: ft=sls
# Only when pillar qmail:clean:remove_install asks for it: remove what the
# build installed (bin, boot, doc, man, rc, the build record and workdir).
# queue/, control/, users/ and alias/ stay: mail is never removed silently.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- if qmail.clean.remove_install %}

{%-   for path in qmail.build_remove | reject("equalto", qmail.build.workdir) %}

{{ ("qmail-build-clean-file-absent-" ~ path) | json }}:
  file.absent:
    - name: {{ path | json }}
{%-   endfor %}

{#- The workdir only if the ledger lists it (the formula made it). #}
{{ ("qmail-build-clean-file-absent-" ~ qmail.build.workdir) | json }}:
  qmail_ledger.removed:
    - name: {{ qmail.build.workdir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.workdir | json }}
{%- else %}

qmail-build-clean-kept-test-nop:
  test.nop:
    - name: {{ ('qmail installed tree kept in ' ~ qmail.lookup.home
                ~ ' (qmail:clean:remove_install is false)') | json }}
{%- endif %}
