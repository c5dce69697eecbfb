# -*- coding: utf-8 -*-
# vim: ft=sls
# What the qmail_queue beacon needs to know of this host (its qmail home, its
# role, the port of its qmail-smtpd: null on a client), as the formula
# merged it: the beacon reads this file (its option `settings`), never the
# pillar. Written on every host; the beacon itself is the user's to enable.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

qmail-service-beacon-settings-file-serialize:
  file.serialize:
    - name: {{ qmail.beacon.file | json }}
    - dataset: {{ qmail.beacon.host | json }}
    - serializer: json
    - makedirs: true
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
