"""
Hand sendmail's queue over to qmail, so that switching loses no mail.

notqmail's REMOVE.sendmail asks for sendmail's queues to be flushed before
the switch. Messages that cannot be delivered yet would otherwise sit in
``/var/spool/mqueue`` (the MTA's queue) and ``/var/spool/mqueue-client`` or
``clientmqueue`` (the submission program's) under a sendmail that no longer
runs. ``handover`` gives each of them to ``qmail-queue`` with its envelope
(sender and the recipients still to be delivered) and its headers and body,
then removes sendmail's files: once, and never lost.

One message, one transaction (sendmail's files: ``qf<id>``, the envelope and
headers; ``df<id>``, the body):

1. lock the ``qf`` file as sendmail's own queue runners do (one that is
   locked is in sendmail's hands: it stays where it is);
2. rename it to ``qmail-claimed-<id>``: sendmail's runners only look at
   ``qf*`` files, so from here on the message is qmail's to deliver;
3. ``qmail-queue`` with the envelope; a trace header names the sendmail id;
4. remove the claim, then the ``df``.

The steps run in a process of their own session: a Salt job killed at any
moment (SIGKILL) does not stop a message between steps 3 and 4, and a lock
file keeps two hand-overs from running at once. A claim that is still there
on the next run (the hand-over process itself died) is looked for in qmail's
queue by its trace header: found, only the files are removed; not found, it
is handed over again. What cannot be parsed (a recipient that is a program
or a file, a header with an unexpanded sendmail macro, a missing ``df``) is
left exactly where it is and reported.
"""

import fcntl
import functools
import json
import logging
import os
import socket
import subprocess
import sys
from email.utils import formatdate

try:
    from salt.exceptions import CommandExecutionError, SaltInvocationError
except ImportError:  # run as the hand-over process by a python without Salt
    CommandExecutionError = SaltInvocationError = RuntimeError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_mqueue"

# Debian: mqueue and mqueue-client; FreeBSD, RedHat, Suse: clientmqueue.
CLAIM = "qmail-claimed-"
# The trace header each handed-over message gets, first in its headers.
TRACE = b"Received: (from sendmail queue %s id %s)\n\tby %s (qmail formula hand-over); %s\n"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _setting(key):
    """The formula's own setting (``qmail_settings.get``) for an argument the
    caller left out: the states pass every one, the defaults serve the CLI
    and live in parameters/ only."""
    return __salt__["qmail_settings.get"](key)


# Arguments as typed on the command line, through the shared validators.
def _queues(queues):
    if queues is None:
        return _setting("lookup:sendmail_queues")
    return _v("each")(queues, "queues", "system_file")


def _timeout(timeout):
    return _v("integer")(timeout, "timeout", 1, 86400)


class Unparsable(ValueError):
    """A queue file this module does not hand over (left in place)."""


# --------------------------------------------------------------------------
# sendmail's qf format (sendmail's doc/op, "Queue file contents")
# --------------------------------------------------------------------------
def _unbracket(addr):
    addr = addr.strip()
    if addr.startswith(b"<") and addr.endswith(b">"):
        addr = addr[1:-1]
    return addr


def _check_address(addr, what):
    if any(c in addr for c in b" \t\r\n\0") or any(c > 126 for c in addr):
        raise Unparsable(f"{what} {addr!r} is not a plain address")
    return addr


def parse_qf(data):
    """
    The envelope and headers of a sendmail queue file (bytes): a dict with
    ``sender`` (bytes, empty for a bounce), ``recipients`` (the ones still
    to be delivered) and ``headers`` (bytes, one header per line, without
    sendmail's own ``Return-Path``). Raises ``Unparsable`` with the reason
    for anything it would not hand over faithfully.

    CLI Example::

        salt '*' qmail_mqueue.parse_qf "$(cat /var/spool/mqueue/qf6B1AL7t3000206)"
    """
    if isinstance(data, str):  # from the command line
        data = data.encode("utf-8", "surrogateescape")
    if not isinstance(data, bytes):
        _v("fail")("data", f"expected the queue file's text, got {_v('type_name')(data)}")
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines or lines[-1] != b".":
        raise Unparsable("incomplete queue file (no final '.')")
    sender = None
    recipients = []
    headers = []
    for line in lines[:-1]:
        if line[:1] in (b" ", b"\t"):  # continuation of the header before
            if headers:
                headers[-1] += b"\n" + line
            continue
        kind, rest = line[:1], line[1:]
        if kind == b"S":
            sender = _check_address(_unbracket(rest), "sender")
        elif kind == b"R":
            # R<flags>:<address> since queue file version 4; older ones: R<address>.
            flags, colon, addr = rest.partition(b":")
            addr = _unbracket(addr if colon and b"@" not in flags and b"<" not in flags
                              else rest)
            if addr.startswith(b"\\"):
                addr = addr[1:]  # \user: "no aliasing", a mailbox all the same
            if addr[:1] in (b"|", b"/") or addr.lower().startswith(b":include:"):
                raise Unparsable(f"recipient {addr!r} is a program, a file or an include")
            recipients.append(_check_address(addr, "recipient"))
        elif kind == b"H":
            if rest.startswith(b"?"):
                cond, mark, text = rest[1:].partition(b"?")
                if not mark or cond.startswith(b"$"):
                    raise Unparsable(f"header {rest[:40]!r} depends on a sendmail macro")
                rest = text
            headers.append(rest)
    if sender is None:
        raise Unparsable("no sender (S line)")
    if not recipients:
        raise Unparsable("no recipients left to deliver")
    kept = []
    for header in headers:
        name = header.split(b":", 1)[0].strip().lower()
        if name == b"return-path":
            continue  # sendmail's own template; qmail writes the real one at delivery
        if b"\x81" in header:
            try:
                header.decode("utf-8")
            except UnicodeDecodeError:
                raise Unparsable(
                    f"header {header[:40]!r} holds an unexpanded sendmail macro") from None
        kept.append(header + b"\n")
    return {"sender": sender, "recipients": recipients, "headers": b"".join(kept)}


def _envelope(sender, recipients):
    """qmail-queue's envelope (qmail-queue(8)): F sender, T each recipient."""
    return (b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in recipients) + b"\0")


# --------------------------------------------------------------------------
# Queue folders
# --------------------------------------------------------------------------
def _folders(queue):
    """(qf folder, df folder) of a queue: flat, or with qf/ and df/ subfolders."""
    if os.path.isdir(os.path.join(queue, "qf")):
        data = os.path.join(queue, "df")
        return os.path.join(queue, "qf"), data if os.path.isdir(data) else os.path.join(queue, "qf")
    return queue, queue


def _entries(queue):
    """[(id, qf path, df path, claimed)] of a queue folder, in id order."""
    qdir, ddir = _folders(queue)
    found = []
    for name in sorted(os.listdir(qdir)):
        if name.startswith("qf"):
            qid, claimed = name[2:], False
        elif name.startswith(CLAIM):
            qid, claimed = name[len(CLAIM):], True
        else:
            continue
        if qid and "/" not in qid:
            found.append((qid, os.path.join(qdir, name), os.path.join(ddir, "df" + qid), claimed))
    return found


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _examine(qf, df):
    """The parsed message of a qf/df pair; Unparsable when it cannot be handed over."""
    try:
        message = parse_qf(_read(qf))
    except OSError as exc:
        raise Unparsable(f"cannot read {qf}: {exc.strerror}") from None
    if not os.path.isfile(df):
        raise Unparsable(f"no body ({df} is missing)")
    return message


def status(queues=None):
    """
    Sendmail's queues as a sysadmin checks them: per existing queue folder,
    ``messages`` (sendmail's own ``qf`` files), ``claimed`` (being handed
    over to qmail), and ``kept``: the messages that ``handover`` leaves
    there, each with its ``id`` and the ``reason``.

    CLI Example::

        salt '*' qmail_mqueue.status
        salt '*' qmail_mqueue.status '[/var/spool/mqueue]'
    """
    result = {}
    for queue in _queues(queues):
        if not os.path.isdir(queue):
            continue
        entries = _entries(queue)
        kept = []
        for qid, qf, df, _ in entries:
            try:
                _examine(qf, df)
            except Unparsable as exc:
                kept.append({"id": qid, "reason": str(exc)})
        result[queue] = {"messages": sum(1 for e in entries if not e[3]),
                         "claimed": sum(1 for e in entries if e[3]), "kept": kept}
    return result


def pending(queues=None):
    """
    The ids of the messages ``handover`` would hand over now, per queue.

    CLI Example::

        salt '*' qmail_mqueue.pending
    """
    result = {}
    for queue, info in status(queues).items():
        kept = {k["id"] for k in info["kept"]}
        ids = [qid for qid, *_ in _entries(queue) if qid not in kept]
        if ids:
            result[queue] = ids
    return result


# --------------------------------------------------------------------------
# The hand-over (runs in a process of its own, see the module docstring)
# --------------------------------------------------------------------------
def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _locked_by_sendmail(handle):
    """Take sendmail's lock on an open qf; False when sendmail holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def _in_qmail_queue(home, trace_id):
    """Whether a message whose trace header carries ``trace_id`` waits in qmail's queue."""
    mess = os.path.join(home, "queue", "mess")
    for root, _, files in os.walk(mess):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as handle:
                    if trace_id in handle.read(4096):
                        return True
            except OSError:
                continue
    return False


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _qmail_queue(qmail_queue, data, message):
    read_env, write_env = os.pipe()
    try:
        proc = subprocess.Popen([qmail_queue], stdin=subprocess.PIPE, stdout=read_env,
                                stderr=subprocess.PIPE, close_fds=True)
    finally:
        os.close(read_env)
    # The message on fd 0 first (qmail-queue reads it all), then the envelope on fd 1.
    try:
        proc.stdin.write(data)
        proc.stdin.close()
        _write_all(write_env, _envelope(message["sender"], message["recipients"]))
    except BrokenPipeError:
        pass
    finally:
        os.close(write_env)
    err = proc.stderr.read().decode(errors="replace").strip()
    code = proc.wait()
    if code != 0:
        raise Unparsable(f"qmail-queue refused it (exit {code}{': ' + err if err else ''})")


def _hand_one(queue, qid, qf, df, claimed, qmail_queue, home, host):
    """Hand one message over; return None when done, else the reason it stays."""
    qdir = os.path.dirname(qf)
    claim = os.path.join(qdir, CLAIM + qid)
    trace_id = f"sendmail queue {queue} id {qid})".encode()
    try:
        message = _examine(qf, df)
        if not claimed:
            with open(qf, "rb+") as handle:
                if _locked_by_sendmail(handle):
                    return "in use by a sendmail process"
                os.rename(qf, claim)
            _fsync_dir(qdir)
        elif _in_qmail_queue(home, trace_id):
            message = None  # handed over already; only the files are left
        if message is not None:
            trace = TRACE % (queue.encode(), qid.encode(), host.encode(),
                             formatdate(usegmt=True).encode())
            data = trace + message["headers"] + b"\n" + _read(df)
            try:
                _qmail_queue(qmail_queue, data, message)
            except (Unparsable, OSError) as exc:
                os.rename(claim, qf)  # sendmail's again, untouched
                _fsync_dir(qdir)
                return str(exc)
        os.unlink(claim)
        _fsync_dir(qdir)
        os.unlink(df)
        _fsync_dir(os.path.dirname(df))
    except Unparsable as exc:
        return str(exc)
    return None


def _handover(queues, qmail_queue, home, lock):
    with open(lock, "a", encoding="ascii") as lock_handle:
        fcntl.flock(lock_handle, fcntl.LOCK_EX)  # one hand-over at a time
        host = socket.getfqdn()
        handed, kept = [], []
        for queue in queues:
            if not os.path.isdir(queue):
                continue
            for qid, qf, df, claimed in _entries(queue):
                reason = _hand_one(queue, qid, qf, df, claimed, qmail_queue, home, host)
                if reason is None:
                    handed.append({"queue": queue, "id": qid})
                else:
                    kept.append({"queue": queue, "id": qid, "reason": reason})
        return {"handed_over": handed, "kept": kept}


def handover(queues=None, qmail_queue=None, lock=None, test=False, timeout=600):
    """
    Hand every message of sendmail's ``queues`` over to qmail with its
    envelope (see the module docstring); sendmail must no longer run.
    Returns ``handed_over`` and ``kept`` (``queue``, ``id``, and ``reason``
    for those left in place). With ``test=True``, only predicts:
    ``handed_over`` lists what would be handed over, nothing is touched.

    qmail_queue
        qmail's ``bin/qmail-queue`` (default ``<lookup:home>/bin/qmail-queue``).

    CLI Example::

        salt '*' qmail_mqueue.handover
        salt '*' qmail_mqueue.handover test=True
    """
    queues = _queues(queues)
    lock = _v("path")(lock or _setting("sendmail:mqueue_lock"), "lock")
    timeout = _timeout(timeout)
    if qmail_queue:
        qmail_queue = _v("path")(qmail_queue, "qmail_queue")
    else:
        qmail_queue = os.path.join(_setting("lookup:home"), "bin", "qmail-queue")
    home = os.path.dirname(os.path.dirname(qmail_queue))
    info = status(queues)
    handed = [{"queue": q, "id": i} for q, ids in pending(queues).items() for i in ids]
    kept = [dict(k, queue=q) for q, v in info.items() for k in v["kept"]]
    # Nothing to hand over (the converged case): no process to start.
    if test or not handed:
        return {"handed_over": handed, "kept": kept}
    if not os.access(qmail_queue, os.X_OK):
        raise CommandExecutionError(f"{qmail_queue} is not installed")
    return _in_own_session({"queues": queues, "qmail_queue": qmail_queue, "home": home,
                            "lock": lock}, timeout, "the hand-over of sendmail's queue")


# --------------------------------------------------------------------------
# Back to sendmail (qmail.clean): qmail's queue, once qmail-send is stopped
# --------------------------------------------------------------------------
def _zero_fields(path):
    try:
        return [f for f in _read(path).split(b"\0") if f]
    except FileNotFoundError:
        return []


def qmail_queue_messages(home=None):
    """
    The messages in qmail's queue (qmail-send(8)'s layout) with what is
    left to deliver: ``id``, ``sender`` and ``recipients`` (those not done
    yet, local and remote), ``bounce`` (a bounce is still to be sent) and
    ``files`` (every file of the message). Unprocessed messages (``todo``)
    carry the envelope qmail-queue wrote into ``intd``.

    CLI Example::

        salt '*' qmail_mqueue.qmail_queue_messages
    """
    return _queue_messages(_v("path")(home or _setting("lookup:home"), "home"))


def _queue_messages(home):
    """qmail_queue_messages without the loader (the hand-back process)."""
    queue = os.path.join(home, "queue")
    found = []
    for root, _, files in os.walk(os.path.join(queue, "mess")):
        for name in sorted(files):
            split = os.path.basename(root)
            paths = {part: os.path.join(queue, part, split, name)
                     for part in ("mess", "info", "local", "remote")}
            paths.update(todo=os.path.join(queue, "todo", name),
                         intd=os.path.join(queue, "intd", name),
                         bounce=os.path.join(queue, "bounce", name))
            if os.path.exists(paths["todo"]):
                fields = _zero_fields(paths["intd"])
            else:
                fields = (_zero_fields(paths["info"]) + _zero_fields(paths["local"])
                          + _zero_fields(paths["remote"]))
            sender = next((f[1:] for f in fields if f[:1] == b"F"), None)
            found.append({
                "id": name, "sender": sender,
                "recipients": [f[1:] for f in fields if f[:1] == b"T"],
                "bounce": os.path.exists(paths["bounce"]),
                "mess": paths["mess"],
                "files": [p for p in paths.values() if os.path.exists(p)],
            })
    return found


def _give_back(home, sendmail):
    handed, kept = [], []
    for message in _queue_messages(home):
        if message["bounce"] or message["sender"] is None:
            kept.append({"id": message["id"], "reason": "a bounce is pending"
                         if message["bounce"] else "no envelope yet"})
            continue
        if message["recipients"]:
            sender = message["sender"].decode("latin-1") or "<>"
            rcpts = [r.decode("latin-1") for r in message["recipients"]]
            with open(message["mess"], "rb") as mess:
                proc = subprocess.run([sendmail, "-oi", "-f", sender, "--", *rcpts],
                                      stdin=mess, capture_output=True, check=False)
            if proc.returncode != 0:
                kept.append({"id": message["id"], "reason": "sendmail refused it: "
                             + proc.stderr.decode(errors="replace").strip()[-300:]})
                continue
        # Envelope files first: without them qmail-send would not deliver it again.
        for path in sorted(message["files"], key=lambda p: p == message["mess"]):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        handed.append({"id": message["id"], "recipients": len(message["recipients"])})
    return {"handed_back": handed, "kept": kept}


def handback(home=None, sendmail=None, lock=None, test=False, timeout=600):
    """
    Give every message still in qmail's queue to the (restored) sendmail,
    with its envelope: the recipients not delivered yet. Only while no
    qmail-send runs (the queue is its own then). Returns ``handed_back`` and
    ``kept`` (with the reason, e.g. a bounce qmail-send has still to write).
    With ``test=True``, only predicts. Like ``handover``, it runs in a
    process of its own session, one at a time.

    CLI Example::

        salt '*' qmail_mqueue.handback
    """
    home = _v("path")(home or _setting("lookup:home"), "home")
    sendmail = _v("path")(sendmail or _setting("lookup:sendmail_paths")[0], "sendmail")
    lock = _v("path")(lock or _setting("sendmail:mqueue_lock"), "lock")
    timeout = _timeout(timeout)
    if __utils__["qmail_procs.pids_named"]("qmail-send"):
        raise CommandExecutionError("qmail-send runs: its queue stays with it")
    if test:
        messages = qmail_queue_messages(home)
        return {"handed_back": [{"id": m["id"], "recipients": len(m["recipients"])}
                                for m in messages if not m["bounce"] and m["sender"] is not None],
                "kept": []}
    return _in_own_session({"give_back": True, "home": home, "sendmail": sendmail,
                            "lock": lock}, timeout, "giving qmail's queue back to sendmail")


def _in_own_session(args, timeout, what):
    """Run ``_main(args)`` as this file in a process of its own session:
    killing the Salt job does not cut a message in two."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True, check=False)
    if proc.returncode != 0:
        raise CommandExecutionError(f"{what} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def _main(args):
    os.makedirs(os.path.dirname(args["lock"]), mode=0o755, exist_ok=True)
    if not args.get("give_back"):
        return _handover(args["queues"], args["qmail_queue"], args["home"], args["lock"])
    with open(args["lock"], "a", encoding="ascii") as lock_handle:
        fcntl.flock(lock_handle, fcntl.LOCK_EX)
        return _give_back(args["home"], args["sendmail"])


if __name__ == "__main__":
    json.dump(_main(json.loads(sys.argv[1])), sys.stdout)
    sys.exit(0)
