# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the alias files the formula manages; the Maildirs keep their mail.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

{%- for name in qmail.aliases_files | sort %}

{{ ("qmail-aliases-clean-qmail-" ~ name ~ "-file-absent") | json }}:
  file.absent:
    - name: {{ (qmail.lookup.home ~ '/alias/.qmail-' ~ name) | json }}
{%- endfor %}
