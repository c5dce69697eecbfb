"""SMTP checks as a sysadmin makes them by hand: the greeting of a server, and
the answer to ``RCPT TO``, asked either from this machine (the lab gateway:
an outsider, in no host's relay rules) or from inside a lab host.

The same small smtplib script runs in both places, so both ask alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from .host import Host

_SCRIPT = """\
import json, smtplib, sys
ip, port, recipient = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(timeout=15)
code, text = s.connect(ip, port)
out = {"greeting": [code, text.decode(errors="replace")]}
if code == 220 and recipient:
    s.helo("checker.example")
    s.mail("someone@checker.example")
    out["rcpt"] = s.rcpt(recipient)[0]
    s.quit()
print(json.dumps(out))
"""


def _ask(ip: str, port: int, recipient: str, host: Host | None) -> dict:
    argv = ["python3", "-c", _SCRIPT, ip, str(port), recipient]
    if host is None:
        argv[0] = sys.executable
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    else:
        proc = host.run(argv, timeout=60)
    if proc.returncode != 0:
        raise ConnectionError(f"SMTP {ip}:{port}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def greeting(ip: str, port: int = 25, host: Host | None = None) -> tuple[int, str]:
    """(code, text) of the server's greeting; ConnectionError when none answers."""
    code, text = _ask(ip, port, "", host)["greeting"]
    return code, text


def rcpt(ip: str, recipient: str, port: int = 25, host: Host | None = None) -> int:
    """The reply code to ``RCPT TO:<recipient>`` (after HELO and MAIL FROM)."""
    answer = _ask(ip, port, recipient, host)
    if "rcpt" not in answer:
        raise ConnectionError(f"SMTP {ip}:{port} greeted with {answer['greeting']}")
    return answer["rcpt"]


# Both scripts below: connect (implicit TLS from the first byte, the
# certificate checked for the spool's name, not its address, or plain for
# STARTTLS); the script makes ``ctx`` first, this starts ``out``.
_CONNECT = """\
out = {}
s = smtplib.SMTP(timeout=a["io_timeout"], local_hostname=a["helo"])
if a["implicit"]:
    raw = socket.create_connection((a["ip"], a["port"]), timeout=a["io_timeout"])
    s.sock = ctx.wrap_socket(raw, server_hostname=a["name"])
    out["greeting"] = s.getreply()[0]
else:
    out["greeting"] = s.connect(a["ip"], a["port"])[0]
"""


def _run_script(script: str, args: dict, what: str, host: Host | None,
                timeout: float) -> dict:
    """Run ``script`` with ``args`` (JSON) on this machine or on ``host``;
    its JSON output, or ConnectionError with the client's last error line."""
    argv = ["python3", "-c", script, json.dumps(args)]
    if host is None:
        argv[0] = sys.executable
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    else:
        proc = host.run(argv, timeout=timeout)
    if proc.returncode != 0:
        raise ConnectionError(f"{what}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


# One SMTP session over TLS, as a client program makes it: STARTTLS on the
# SMTP port or implicit TLS (RFC 8314), the server's certificate verified
# against a CA (with the host name) or only fetched (a self-signed one is
# then checked by its fingerprint). Optionally a pause between RCPT and
# DATA, for a certificate change while the session is open.
_TLS_SCRIPT = """\
import hashlib, json, smtplib, socket, ssl, sys, time
a = json.loads(sys.argv[1])
if a["ca"]:
    ctx = ssl.create_default_context(cadata=a["ca"])
else:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
""" + _CONNECT + """if not a["implicit"]:
    s._host = a["name"]  # what starttls verifies the certificate against
    s.ehlo()
    out["starttls_offered"] = s.has_extn("starttls")
    out["starttls"] = s.starttls(context=ctx)[0]
out["ehlo"] = s.ehlo()[0]
der = s.sock.getpeercert(binary_form=True)
digest = hashlib.sha256(der).hexdigest().upper()
out["fingerprint"] = ":".join(digest[i:i + 2] for i in range(0, 64, 2))
out["tls_version"] = s.sock.version()
out["mail"] = s.mail(a["sender"])[0]
out["rcpt"] = [s.rcpt(r)[0] for r in a["rcpts"]]
if a["pause_file"]:
    open(a["pause_file"] + ".ready", "w").close()
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            open(a["pause_file"]).close()
            break
        except OSError:
            time.sleep(0.2)
if a["message"] is not None and 250 in out["rcpt"]:
    out["data"] = s.data(a["message"])[0]
s.quit()
print(json.dumps(out))
"""


def tls_session(ip: str, name: str, port: int = 25, implicit: bool = False,
                ca: str | None = None, rcpts: Sequence[str] = (), message: str | None = None,
                sender: str = "someone@checker.example", host: Host | None = None,
                pause_file: str | None = None, timeout: float = 180) -> dict:
    """One SMTP session over TLS to ``ip`` (whose certificate must be for
    ``name`` when ``ca`` is given), from this machine or from ``host``.
    Returns the codes (``starttls``, ``ehlo``, ``mail``, ``rcpt`` list,
    ``data``), ``starttls_offered``, the server certificate's SHA-256
    ``fingerprint`` and the ``tls_version``. A failed handshake or
    verification raises ConnectionError with the client's error."""
    args = {"ip": ip, "name": name, "port": port, "implicit": implicit, "ca": ca,
            "rcpts": list(rcpts), "message": message, "sender": sender,
            "pause_file": pause_file, "io_timeout": 30, "helo": "checker.example"}
    return _run_script(_TLS_SCRIPT, args, f"SMTP over TLS to {ip}:{port}", host, timeout)


# One session as a mail client makes it for submission (issue 22): EHLO's
# extensions (before and after STARTTLS on 25, inside implicit TLS on 465),
# then optionally AUTH PLAIN or LOGIN, MAIL, RCPT and DATA; every reply code.
_AUTH_SCRIPT = """\
import base64, json, smtplib, socket, ssl, sys
a = json.loads(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
""" + _CONNECT + """s.ehlo()
out["ehlo"] = {k: v for k, v in s.esmtp_features.items()}
if a["starttls"]:
    s._host = a["name"]
    out["starttls"] = s.starttls(context=ctx)[0]
    s.ehlo()
    out["ehlo_tls"] = {k: v for k, v in s.esmtp_features.items()}
b64 = lambda t: base64.b64encode(t.encode()).decode()
if a["login"]:
    user, password = a["login"]
    if a["method"] == "PLAIN":
        out["auth"] = s.docmd("AUTH", "PLAIN " + b64("\\0" + user + "\\0" + password))[0]
    else:
        s.docmd("AUTH", "LOGIN")
        s.docmd(b64(user))
        out["auth"] = s.docmd(b64(password))[0]
if a["sender"] is not None:
    out["mail"] = s.mail(a["sender"])[0]
    out["rcpt"] = [s.rcpt(r)[0] for r in a["rcpts"]] if out["mail"] == 250 else []
    if a["message"] is not None and 250 in out["rcpt"]:
        out["data"] = s.data(a["message"])[0]
try:
    s.quit()
except smtplib.SMTPServerDisconnected:
    pass
print(json.dumps(out))
"""


def auth_session(ip: str, name: str, port: int = 465, implicit: bool = True,
                 starttls: bool = False, login: tuple[str, str] | None = None,
                 method: str = "PLAIN", sender: str | None = None,
                 rcpts: Sequence[str] = (), message: str | None = None,
                 host: Host | None = None, timeout: float = 180) -> dict:
    """One SMTP session as a mail client makes it (the certificate is not
    checked: test_tls_lab does that): ``ehlo`` (and ``ehlo_tls`` after
    STARTTLS) are the EHLO extensions {name: parameters}; ``auth``, ``mail``,
    ``rcpt`` list and ``data`` the reply codes of what was asked."""
    args = {"ip": ip, "name": name, "port": port, "implicit": implicit,
            "starttls": starttls, "login": list(login) if login else None,
            "method": method, "sender": sender, "rcpts": list(rcpts), "message": message,
            "io_timeout": 60, "helo": "client.example"}
    return _run_script(_AUTH_SCRIPT, args, f"SMTP to {ip}:{port}", host, timeout)
