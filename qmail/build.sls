# -*- coding: utf-8 -*-
# vim: ft=sls
# qmail from a verified source tarball: conf-*, make setup, make check
# (qmail_build.installed), or the builder's tree when the fleet shares one;
# then <home>/rc, the script that starts qmail with the default delivery.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set qmail = salt["qmail_settings.show"](tplroot=tplroot) if "qmail_settings.show" in salt
                else raise("The qmail formula's execution modules are not on this minion: "
                           "run `salt '*' saltutil.sync_all` first (README: Using the formula).") %}

include:
  - {{ (tplroot ~ ".users") | json }}

# First of all (the accounts wait for it): a wrong hash changes nothing.
qmail-build-source-qmail_build-source_verified:
  qmail_build.source_verified:
    - name: {{ qmail.lookup.home | json }}
    - source: {{ qmail.build_source | json }}
    - conf: {{ qmail.build_conf | json }}
    - require_in:
{#- (the accounts' states require their ledger records: gated with them) #}
      - qmail_ledger: qmail-users-groups-qmail_ledger-intended
      - qmail_ledger: qmail-users-users-qmail_ledger-intended

{%- if qmail.build_source.patches %}
{%-   if qmail.lookup.patch_package %}

# patch(1) for qmail:source:patches: only with patches, and only once they
# are verified (a wrong hash changes nothing). A build dependency: clean
# leaves it, as it leaves the compiler.
qmail-build-patch-pkg-installed:
  pkg.installed:
    - name: {{ qmail.lookup.patch_package | json }}
    - require:
      - qmail_build: qmail-build-source-qmail_build-source_verified
    - require_in:
      - qmail_patches: qmail-build-patches-qmail_patches-applicable
{%-   endif %}

# The whole stack tried in a scratch copy before the accounts and the build:
# a patch that does not apply is named (qmail:source:patches:N).
qmail-build-patches-qmail_patches-applicable:
  qmail_patches.applicable:
    - name: {{ qmail.lookup.home | json }}
    - source: {{ qmail.build_source | json }}
    - conf: {{ qmail.build_conf | json }}
    - require:
      - qmail_build: qmail-build-source-qmail_build-source_verified
    - require_in:
      - qmail_build: qmail-build-tree-qmail_build-installed
{#- (the accounts' states require their ledger records: gated with them) #}
      - qmail_ledger: qmail-users-groups-qmail_ledger-intended
      - qmail_ledger: qmail-users-users-qmail_ledger-intended
{%- endif %}

# The ledger (issue 19): the workdir is the formula's when it makes it (or it
# holds only what a build leaves); qmail.build.clean removes only then.
qmail-build-workdir-qmail_ledger-recorded:
  qmail_ledger.recorded:
    - name: {{ qmail.build.workdir | json }}
    - kind: dirs
    - ledger: {{ qmail.lookup.ledger | json }}
    - only: {{ qmail.owns.made.workdir | json }}
    - require:
      - qmail_build: qmail-build-source-qmail_build-source_verified
    - require_in:
      - qmail_build: qmail-build-tree-qmail_build-installed

qmail-build-tree-qmail_build-installed:
  qmail_build.installed:
    - name: {{ qmail.lookup.home | json }}
    - source: {{ qmail.build_source | json }}
    - conf: {{ qmail.build_conf | json }}
    - workdir: {{ qmail.build.workdir | json }}
    - share: {{ qmail.build.share | json }}
    - require:
      - qmail_build: qmail-build-source-qmail_build-source_verified
{%- for group in qmail.accounts_groups %}
      - group: {{ ("qmail-users-group-present-" ~ group.key) | json }}
{%- endfor %}
{%- for user in qmail.accounts_users %}
      - user: {{ ("qmail-users-user-present-" ~ user.key) | json }}
{%- endfor %}

qmail-build-rc-file-managed:
  file.managed:
    - name: {{ (qmail.lookup.home ~ '/rc') | json }}
    - contents: {{ salt["qmail_tofs.contents"](["build/rc.jinja"], "rc", {
                     "home": qmail.lookup.home, "delivery_arg": qmail.delivery_arg,
                     "logger": qmail.service.send_logger},
                   qmail.tofs) | json }}
    - user: root
    - group: {{ qmail.lookup.rootgroup | json }}
    - mode: '0755'
    - require:
      - qmail_build: qmail-build-tree-qmail_build-installed
