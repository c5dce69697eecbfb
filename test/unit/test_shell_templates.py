"""
The run scripts are shell: every value the formula puts in them as a word
is shell-quoted (``shlex.quote``, what Salt's ``quote`` filter does), so a
value the checks let through stays one word and runs nothing. For the values
the path policy allows, quoting changes no byte (converged hosts keep their
scripts). The texts are the formula's defaults (``_utils/qmail_texts.py``),
as ``qmail_tofs.contents`` gives them to the SLS files.
"""

import importlib.util
import pathlib
import shlex
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HOSTILE = "/srv/q $(touch /tmp/qmail-shell-marker) `id`;x"
CONTEXT = {"home": "/var/qmail", "rules": "/etc/tcp.smtp", "port": 25, "concurrency": 40,
           "qmaild": "qmaild", "ucspi_bin": "/usr/bin", "daemontools_bin": "/usr/bin",
           "program": ["/var/qmail/supervise/qmail-smtpd/smtpd"], "drop": True,
           "tls": "none", "user": "qmaill", "size": 1000000, "count": 10,
           "log_dir": "/var/log/qmail/qmail-send", "listen": "0.0.0.0"}
NAMES = {"smtpd-run": ("home", "rules", "qmaild", "ucspi_bin", "port", "concurrency",
                       "program", "drop", "tls", "listen"),
         "smtpd": ("home",), "send-run": ("home",),
         "log-run": ("daemontools_bin", "user", "size", "count", "log_dir")}


@pytest.fixture
def texts():
    """_utils/qmail_texts.py as a plain module (it is pure)."""
    spec = importlib.util.spec_from_file_location("qmail_texts",
                                                  REPO / "_utils" / "qmail_texts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(texts, name, **values):
    context = {key: value for key, value in dict(CONTEXT, **values).items()
               if key in NAMES[name]}
    return texts.text(f"service/{name}", context)


def _exec_words(script):
    """The words of the script's last ``exec`` command (continuations joined)."""
    text = script.replace("\\\n", " ")
    line = [ln for ln in text.splitlines() if ln.strip().startswith("exec ")][-1]
    return shlex.split(line)


@pytest.mark.parametrize("drop", [True, False])
def test_smtpd_run_keeps_each_value_one_word(texts, drop):
    script = _render(texts, "smtpd-run", drop=drop, ucspi_bin=HOSTILE, rules=HOSTILE,
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
def test_other_scripts_keep_each_value_one_word(texts, name, key, expected):
    script = _render(texts, name, **{key: HOSTILE})
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert expected in _exec_words(script)


def test_quoting_changes_nothing_for_checked_values(texts, monkeypatch):
    """The formula's own values are made of shell-safe characters."""
    for name in NAMES:
        for drop in (True, False):
            quoted = _render(texts, name, drop=drop)
            with monkeypatch.context() as patch:
                patch.setattr(texts, "_q", str)
                assert _render(texts, name, drop=drop) == quoted
