# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything the host's role needs, in order.
include:
  - .users
  - .build
  - .control
  - .aliases
  - .sendmail
  - .filter
  - .service
