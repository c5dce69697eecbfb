# -*- coding: utf-8 -*-
# vim: ft=sls
# The merged settings the SLS files see (parameters/ and its layers, pillar;
# `parameters` lists the files used), written to
# <cachedir>/qmail/mapdata.yaml: test/integration/test_mapdata_salt_call.py
# compares them per platform with test/mapdata/.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import qmail with context %}

qmail-_mapdata-file-managed:
  file.managed:
    - name: {{ (opts.cachedir ~ "/qmail/mapdata.yaml") | json }}
    - makedirs: true
    - mode: '0600'
    - contents: {{ ({"values": qmail} | yaml(False)) | json }}
