# -*- coding: utf-8 -*-
# vim: ft=sls
# Run qmail: qmail-send under qmail:service:supervisor, told of control file
# changes (HUP, restart, qmail-newmrh); qmail-smtpd on a spool only.
include:
  - .service.send
  - .service.smtpd
