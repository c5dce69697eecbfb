# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo the formula in reverse order; the queue is never removed.
{#- The settings first: a refused pillar fails this file, once, and none of
    the files below is fetched or rendered (each would fail the same way). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- do salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
       else raise("The qmail formula's execution modules are not on this minion: "
                  "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}
include:
  - .service.clean
  - .filter.clean
  - .sendmail.clean
  - .aliases.clean
  - .control.clean
  - .build.clean
  - .users.clean
