# -*- coding: utf-8 -*-
# vim: ft=sls
# Reactor (master side), for the qmail_queue beacon's "up" event: a spool
# whose SMTP service answers again (after a stop, a reboot, a minion
# restart) makes every client retry its queue now, instead of waiting for
# qmail-send's next scheduled attempt (minutes to hours later).
#
#   # /etc/salt/master.d/reactor.conf
#   reactor:
#     - 'salt/beacon/*/qmail_queue/up':
#       - salt://qmail/files/reactor/flush-clients.sls
qmail-reactor-flush-clients:
  local.qmail_service.flush:
    - tgt: 'I@qmail:role:client'
    - tgt_type: compound
