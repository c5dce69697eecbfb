# -*- coding: utf-8 -*-
# vim: ft=sls
# A client takes no mail (seed §5.1): no qmail-smtpd, neither under
# tcpserver nor from inetd.
include:
  - .tcpserver
  - .inetd
