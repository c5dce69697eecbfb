"""
qmail_tofs.contents on Salt's loader: the formula's default text when no
file of the site's is listed, a clear error otherwise (a site's own file is
in test/integration/test_mapdata_salt_call.py, with a file root of its own).
"""

import importlib.util
import pathlib
import re

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

REPO = pathlib.Path(__file__).resolve().parents[2]
TOFS = {"files_switch": ["id"], "path_prefix": "qmail",
        "dirs": {"files": "files", "default": "default"}, "source_files": {}}


def test_without_a_site_file_the_text_is_the_formulas_default(modules):
    text = modules.qmail_tofs.contents(["service/send-run"], "send-run",
                                       {"home": "/var/qmail"}, TOFS)
    assert text.startswith("#!/bin/sh\n# Managed by Salt (qmail.service)")
    assert text.endswith("exec 2>&1\nexec /bin/sh /var/qmail/rc\n")


def test_rc_names_the_logger_or_leaves_it_to_multilog(modules):
    values = {"home": "/var/qmail", "delivery_arg": "./Maildir/"}
    syslog = modules.qmail_tofs.contents(["build/rc.jinja"], "rc",
                                         dict(values, logger="splogger qmail"), TOFS)
    assert syslog.endswith("qmail-start ./Maildir/ splogger qmail\n")
    multilog = modules.qmail_tofs.contents(["build/rc.jinja"], "rc", dict(values, logger=""),
                                           TOFS)
    assert multilog.endswith("qmail-start ./Maildir/\n")
    assert "stdout (multilog)" in multilog


def test_a_context_that_is_not_a_mapping_is_refused(modules):
    with pytest.raises(SaltInvocationError, match="^context: a mapping"):
        modules.qmail_tofs.contents(["service/send-run"], "send-run", "home=/x", TOFS)


def test_a_context_missing_a_value_or_with_an_unknown_one_is_refused(modules):
    with pytest.raises(SaltInvocationError, match=r"^context: service/log-run takes "
                       r"daemontools_bin, user, size, count, log_dir; missing: size, count; "
                       r"unknown: sizes$"):
        modules.qmail_tofs.contents(["service/log-run"], "log-run", {
            "daemontools_bin": "/usr/bin", "user": "qmaill", "log_dir": "/x", "sizes": 1},
            TOFS)


def test_a_file_with_neither_a_site_file_nor_a_default_is_an_error(modules):
    with pytest.raises(CommandExecutionError, match="^nothing: no file of .* the formula "
                                                    "has no default text for service/nothing"):
        modules.qmail_tofs.contents(["service/nothing"], "nothing", {}, TOFS)


def test_every_file_the_sls_files_ask_for_has_a_default_text():
    """A typo in an SLS file's path would otherwise show only on a host."""
    asked = set()
    for sls in (REPO / "qmail").rglob("*.sls"):
        asked.update(re.findall(r'qmail_tofs\.contents"\]\(\["([^"]+)"\]',
                                sls.read_text()))
    asked.update({"service/submission", "service/authenticated"})  # the loop's two names
    spec = importlib.util.spec_from_file_location("qmail_texts",
                                                  REPO / "_utils" / "qmail_texts.py")
    texts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(texts)
    assert asked == set(texts.TEXTS)
