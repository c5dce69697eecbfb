"""
Alternatives groups (``__utils__``): Debian's ``update-alternatives`` and
RedHat's ``alternatives`` (same options, same ``--display``), for
``qmail_sendmail.alternative`` and its undo (``restore``). The loader gives ``_utils``
modules no ``__salt__``: the caller passes its ``cmd.run_all``.
"""

import os
import re

import salt.utils.path
from salt.exceptions import CommandExecutionError


def command():
    for cmd in ("update-alternatives", "alternatives"):
        path = salt.utils.path.which(cmd)
        if path:
            return path
    raise CommandExecutionError("neither update-alternatives nor alternatives is installed")


def parse_display(text):
    """``--display``'s output as data: ``mode``, ``current``, ``link``,
    ``slave_links`` and ``alternatives`` (path -> ``{priority, slaves}``)."""
    first, _, rest = text.partition("\n")
    status = {"mode": "manual" if "manual" in first else "auto", "current": None,
              "link": None, "slave_links": {}, "alternatives": {}}
    entry = None
    for line in rest.splitlines():
        text = line.strip()
        if m := re.match(r"^(/\S+) - priority (-?\d+)$", line):
            entry = status["alternatives"][m.group(1)] = {"priority": int(m.group(2)),
                                                           "slaves": {}}
        elif entry is not None and (m := re.match(r"^slave (\S+): (\S+)$", text)):
            entry["slaves"][m.group(1)] = m.group(2)
        elif "currently points to" in text:
            status["current"] = text.split("currently points to", 1)[1].strip()
        elif m := re.match(r"^link (\S+) is (\S+)$", text):
            status["link"] = m.group(2)
        elif m := re.match(r"^slave (\S+) is (\S+)$", text):
            status["slave_links"][m.group(1)] = m.group(2)
    return status


def display(name, run_all):
    """Group ``name`` as ``parse_display`` gives it, None when it does not exist."""
    proc = run_all([command(), "--display", name], python_shell=False, ignore_retcode=True,
                   output_loglevel="quiet")
    return parse_display(proc["stdout"]) if proc["retcode"] == 0 else None


def choice(status):
    return {"mode": status["mode"], "current": status["current"]} if status else None


def run(run_all, *args):
    argv = [command(), *args]
    proc = run_all(argv, python_shell=False, ignore_retcode=True)
    if proc["retcode"] != 0:
        raise CommandExecutionError(f"{' '.join(argv)}: {proc['stderr']}")


def install(run_all, name, link, path, priority, slaves):
    """Register ``path`` in group ``name`` (``slaves``: ``(link, name, target)``)."""
    argv = ["--install", link, name, path, str(priority)]
    for slave_link, slave, target in slaves:
        argv += ["--slave", slave_link, slave, target]
    run(run_all, *argv)


def put_back(run_all, name, before, link, slave_links):
    """Group ``name`` as ``before`` had it: its entries whose files exist
    again, its mode and choice."""
    now = display(name, run_all)
    present = now["alternatives"] if now else {}
    for path, entry in sorted(before["alternatives"].items()):
        if path in present or not os.path.exists(path):
            continue
        install(run_all, name, before["link"] or link, path, entry["priority"],
                [(slave_links[slave], slave, target)
                 for slave, target in sorted(entry["slaves"].items()) if slave in slave_links])
    if before["mode"] == "manual" and before["current"]:
        run(run_all, "--set", name, before["current"])
    else:
        run(run_all, "--auto", name)


def restore(run_all, tools, data, test):
    """Put back each alternatives group of the journal's ``data`` as it was
    before qmail (qmail's entry out, sendmail's back, the old mode and
    choice); ``tools.forget`` drops a journal entry."""
    changes = {}
    for name, saved in sorted(data["alternatives"].items()):
        # The group before anything was moved, else as qmail found it.
        before = data["groups"].get(name) or saved["status"]
        now = display(name, run_all)
        if choice(now) != choice(before) or (now and saved["path"] in now["alternatives"]):
            changes[name] = {"old": choice(now), "new": choice(before)}
        if test:
            continue
        if now and saved["path"] in now["alternatives"]:
            run(run_all, "--remove", name, saved["path"])
        if before:
            put_back(run_all, name, before, saved["link"],
                     dict(saved.get("slave_links", {}), **before["slave_links"]))
        tools.forget("alternatives", name)
    if not test:
        for group in data["groups"]:
            tools.forget("groups", group)
    return changes
