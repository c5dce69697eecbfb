"""
The run scripts are shell: every value the formula puts in them as a word
is shell-quoted (Salt's ``quote`` filter), so a value the checks let through
stays one word and runs nothing. For the values the path policy allows,
quoting changes no byte (converged hosts keep their scripts).
"""

import pathlib
import shlex
import subprocess

import jinja2
import pytest

SERVICE = pathlib.Path(__file__).resolve().parents[2] / "qmail" / "files" / "default" / "service"
HOSTILE = "/srv/q $(touch /tmp/qmail-shell-marker) `id`;x"
CONTEXT = {"home": "/var/qmail", "rules": "/etc/tcp.smtp", "port": 25, "concurrency": 40,
           "qmaild": "qmaild", "ucspi_bin": "/usr/bin", "daemontools_bin": "/usr/bin",
           "program": ["/var/qmail/supervise/qmail-smtpd/smtpd"], "drop": True,
           "tls": "none", "user": "qmaill", "size": 1000000, "count": 10,
           "log_dir": "/var/log/qmail/qmail-send", "listen": "0.0.0.0"}


def _render(name, quote=shlex.quote, **values):
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["quote"] = quote  # shlex.quote is what Salt's own quote filter does
    return env.from_string((SERVICE / name).read_text()).render(**dict(CONTEXT, **values))


def _exec_words(script):
    """The words of the script's last ``exec`` command (continuations joined)."""
    text = script.replace("\\\n", " ")
    line = [ln for ln in text.splitlines() if ln.strip().startswith("exec ")][-1]
    return shlex.split(line)


@pytest.mark.parametrize("drop", [True, False])
def test_smtpd_run_keeps_each_value_one_word(drop):
    script = _render("smtpd-run", drop=drop, ucspi_bin=HOSTILE, rules=HOSTILE,
                     program=[HOSTILE, "-x"])
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    words = _exec_words(script)
    assert words[1] == HOSTILE + "/tcpserver"
    assert words[words.index("-x") + 1] == HOSTILE + ".cdb"
    assert words[-2:] == [HOSTILE, "-x"]


@pytest.mark.parametrize(("name", "key", "expected"), [
    ("smtpd", "home", HOSTILE + "/bin/qmail-smtpd"),
    ("send-run", "home", HOSTILE + "/rc"),
    ("log-run", "log_dir", HOSTILE),
])
def test_other_scripts_keep_each_value_one_word(name, key, expected):
    script = _render(name, **{key: HOSTILE})
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert expected in _exec_words(script)


def test_quoting_changes_nothing_for_checked_values():
    """The formula's own values are made of shell-safe characters."""
    for name in ("smtpd-run", "smtpd", "send-run", "log-run"):
        for drop in (True, False):
            assert _render(name, drop=drop) == _render(name, quote=str, drop=drop)
