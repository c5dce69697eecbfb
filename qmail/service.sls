# -*- coding: utf-8 -*-
# vim: ft=sls
# Run qmail: qmail-send under qmail:service:supervisor, told of control file
# changes (HUP, restart, qmail-newmrh); qmail-smtpd on a spool only; the
# settings file of the qmail_queue beacon.
include:
  - .service.send
  - .service.smtpd
  - .service.beacon
