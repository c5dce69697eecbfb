# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything the host's role needs, in order.
{#- The settings first: a refused pillar fails this file, once, and none of
    the files below is fetched or rendered (each would fail the same way). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- do salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
       else raise("The qmail formula's execution modules are not on this minion: "
                  "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
include:
  - .users
  - .build
  - .control
  - .aliases
  - .sendmail
  - .filter
  - .service
