"""SMTP checks as a sysadmin makes them by hand: the greeting of a server, and
the answer to ``RCPT TO``, asked either from this machine (the lab gateway:
an outsider, in no host's relay rules) or from inside a lab host.

The same small smtplib script runs in both places, so both ask alike.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
