# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo the formula in reverse order; the queue is never removed.
include:
  - .service.clean
  - .filter.clean
  - .sendmail.clean
  - .aliases.clean
  - .control.clean
  - .build.clean
  - .users.clean
