# -*- coding: utf-8 -*-
# vim: ft=sls
# ~alias/.qmail-root, .qmail-postmaster, .qmail-mailer-daemon (INSTALL.alias)
# with their targets from pillar qmail:aliases; the Maildirs they deliver to.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
{%- set alias_home = qmail.lookup.home ~ "/alias" %}

include:
  - {{ (tplroot ~ ".build") | json }}

{%- for maildir in qmail.aliases_maildirs %}
{%-   for sub in ["", "/cur", "/new", "/tmp"] %}

{{ ("qmail-aliases-maildir-file-directory-" ~ maildir ~ sub) | json }}:
  file.directory:
    - name: {{ (maildir ~ sub) | json }}
    - user: {{ qmail.lookup.users.alias | json }}
    - group: {{ qmail.lookup.groups.nofiles | json }}
    - mode: '0700'
    - makedirs: true
    - require:
      - qmail_build: qmail-build-tree-qmail_build-installed
{%-   endfor %}
{%- endfor %}

{%- for name, lines in qmail.aliases_files | dictsort %}
{%-   if lines is none %}

{{ ("qmail-aliases-qmail-" ~ name ~ "-file-absent") | json }}:
  file.absent:
    - name: {{ (alias_home ~ '/.qmail-' ~ name) | json }}
{%-   else %}

{{ ("qmail-aliases-qmail-" ~ name ~ "-file-managed") | json }}:
  file.managed:
    - name: {{ (alias_home ~ '/.qmail-' ~ name) | json }}
    - contents: {{ lines | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0644'
    - require:
      - qmail_build: qmail-build-tree-qmail_build-installed
{%-     for maildir in qmail.aliases_maildirs %}
      - file: {{ ("qmail-aliases-maildir-file-directory-" ~ maildir ~ "/tmp") | json }}
{%-     endfor %}
{%-   endif %}
{%- endfor %}
