"""
Sendmail's queue handed over to qmail (see the ``qmail_mqueue`` execution
module): no message stays behind a sendmail that no longer runs.

.. code-block:: yaml

    qmail-sendmail-queue-qmail_mqueue-handed_over:
      qmail_mqueue.handed_over:
        - queues: [/var/spool/mqueue, /var/spool/mqueue-client]
        - qmail_queue: /var/qmail/bin/qmail-queue

``test=True`` says how many messages would be handed over and touches
nothing. Messages that cannot be handed over stay where they are; the
comment names each with the reason (the state does not fail: they are safe,
and ``qmail_sendmail.status`` lists them too).
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_mqueue"


def __virtual__():
    if "qmail_mqueue.handover" in __salt__:
        return __virtualname__
    return (False, "the qmail_mqueue execution module is not available")


def _kept_comment(kept):
    if not kept:
        return ""
    lines = [f"{k['queue']}/{k['id']}: {k['reason']}" for k in kept]
    return (f"; {len(kept)} message(s) stay in sendmail's queue (see "
            "qmail_sendmail.status): " + "; ".join(lines))


def handed_over(name, queues=None, qmail_queue=None, lock=None):
    """
    Every message of sendmail's ``queues`` is in qmail's queue, with its
    envelope, and gone from sendmail's. Sendmail must be stopped first
    (require ``qmail_sendmail.stopped``).

    name
        A label.
    queues
        sendmail's queue folders (``lookup:sendmail_queues``).
    qmail_queue
        qmail's ``bin/qmail-queue`` (default: in the formula's
        ``lookup:home``). While it is not installed, nothing is handed over
        and the state says how many messages wait.
    lock
        The lock file of hand-overs (default: the formula's, beside the
        sendmail journal).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not qmail_queue:
        qmail_queue = os.path.join(__salt__["qmail_settings.get"]("lookup:home"), "bin",
                                   "qmail-queue")
    test = bool(__opts__["test"])
    handover = __salt__["qmail_mqueue.handover"]
    try:
        if test or not os.access(qmail_queue, os.X_OK):
            done = handover(queues, qmail_queue, lock=lock, test=True)
        else:
            done = handover(queues, qmail_queue, lock=lock)
    except (CommandExecutionError, SaltInvocationError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    count = len(done["handed_over"])
    kept = _kept_comment(done["kept"])
    if not count:
        ret["comment"] = "No message waits in sendmail's queue" + kept
        return ret
    ret["changes"] = {"handed_over": count,
                      "ids": [f"{m['queue']}/{m['id']}" for m in done["handed_over"]]}
    if test:
        ret.update(result=None,
                   comment=f"{count} message(s) would be handed over to qmail" + kept)
    elif not os.access(qmail_queue, os.X_OK):
        ret["changes"] = {}
        ret["comment"] = (f"{count} message(s) wait in sendmail's queue until qmail "
                          f"({qmail_queue}) is installed" + kept)
    else:
        ret["comment"] = f"{count} message(s) handed over to qmail" + kept
    return ret


def handed_back(name, sendmail=None, lock=None):
    """
    ``qmail.clean``: no message is left behind in the queue of qmail home
    ``name`` once qmail-send is stopped: each goes to the restored
    ``sendmail`` with the recipients not delivered yet, then leaves qmail's
    queue. While qmail-send runs (``qmail.sendmail.clean`` alone), its
    queue stays with it and the state says so. ``sendmail`` and ``lock``
    default to the formula's settings (``lookup:sendmail_paths``' first,
    the hand-over lock).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not os.path.isdir(os.path.join(name, "queue", "mess")):
        ret["comment"] = f"No qmail queue in {name}"
        return ret
    test = bool(__opts__["test"])
    try:
        done = __salt__["qmail_mqueue.handback"](name, sendmail, lock=lock, test=test)
    except (CommandExecutionError, SaltInvocationError) as exc:
        if "qmail-send runs" in str(exc):
            ret["comment"] = f"qmail-send runs: the messages in {name}/queue stay with it"
            return ret
        ret.update(result=False, comment=str(exc))
        return ret
    kept = "".join(f"; {name}/queue message {k['id']} stays: {k['reason']}"
                   for k in done["kept"])
    count = len(done["handed_back"])
    if not count:
        ret["comment"] = f"No message waits in {name}/queue" + kept
        return ret
    ret["changes"] = {"handed_back": count}
    if test:
        ret.update(result=None, comment=f"{count} message(s) would be given to sendmail" + kept)
    else:
        ret["comment"] = f"{count} message(s) given to sendmail" + kept
    return ret
