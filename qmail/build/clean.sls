# -*- coding: utf-8 -*-
# vim: ft=sls
# Filled in by issue #5.
{}
