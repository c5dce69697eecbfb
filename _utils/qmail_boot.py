"""
How sendmail is kept from starting at boot (``__utils__``), one class per
boot method, all with the same interface, chosen once by
``method(name, tools)``:

- ``rcconf``: FreeBSD's /etc/rc.conf, ``sendmail_*enable="NO"``;
- ``sysconfig``: /etc/sysconfig/sendmail ``DAEMON=NO``;
- ``irix``: /etc/config/sendmail ``off``;
- ``chkconfig``: ``chkconfig --del``/``--add``;
- ``systemd``, ``sysv``: Salt's service module (systemd units, or SysV
  scripts via update-rc.d); where systemd does not run, ``systemd`` is
  ``chkconfig`` when that exists.

``disable(targets, test)`` returns the changes, saving what was there
(``tools.save(key, record)``) before changing it; ``restore(key, saved,
test)`` undoes one saved record (its ``method`` names the class again).
The loader gives ``_utils`` modules no ``__salt__``: ``tools`` carries the
caller's functions (``run_all``, ``service`` = Salt's
``service.available/enabled/enable/disable``, the ``qmail_keyfile`` readers
and editors, ``write_text``, ``save``, ``booted``, ``which``).
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

# FreeBSD rc.conf knobs that start a sendmail daemon (seed §2 and rc.conf(5)).
RC_CONF_KEYS = (
    "sendmail_enable",
    "sendmail_submit_enable",
    "sendmail_outbound_enable",
    "sendmail_msp_queue_enable",
)


class BootMethod:
    name = ""
    edits_file = False  # targets: the file it edits (else: service names)

    def __init__(self, tools):
        self.tools = tools

    def disable(self, targets, test):
        changes = {}
        for target in targets:
            changes.update(self.disable_one(target, test))
        return changes

    def disable_one(self, target, test):
        raise NotImplementedError

    def restore(self, key, saved, test):
        raise NotImplementedError


class _File(BootMethod):
    """A file the boot scripts read: its old text saved, the file rewritten."""

    edits_file = True

    def _new(self, old):
        """The file's text with sendmail off, and the record to save."""
        raise NotImplementedError

    def _old(self, current, saved):
        """The text ``saved`` had, from the ``current`` one (None: no file)."""
        raise NotImplementedError

    def disable_one(self, target, test):
        old = self.tools.read(target)
        new, saved = self._new(old)
        if new == old:
            return {}
        if not test:
            self.tools.save(target, {"method": self.name, **saved})
            self.tools.write_text(target, new)
        return {target: {"old": old, "new": new}}

    def restore(self, key, saved, test):
        old = self.tools.read(key)
        new = self._old(old, saved)
        if new == old:
            return {}
        if not test:
            if new is None:
                os.unlink(key)
            else:
                self.tools.write_text(key, new)
        return {key: {"old": old, "new": new}}


class _KeyFile(_File):
    WANTED = {}

    def _new(self, old):
        new, originals = self.tools.set_keys(old, self.WANTED)
        return new, {"existed": old is not None, "keys": originals}

    def _old(self, current, saved):
        new = self.tools.unset_keys(current or "", self.WANTED, saved["keys"])
        return None if not saved["existed"] and not new else new


class RcConf(_KeyFile):
    name = "rcconf"
    WANTED = {key: f'{key}="NO"' for key in RC_CONF_KEYS}


class Sysconfig(_KeyFile):
    name = "sysconfig"
    WANTED = {"DAEMON": "DAEMON=NO"}


class Irix(_File):
    name = "irix"

    def _new(self, old):
        if old is not None and old.split() == ["off"]:
            return old, {}
        return "off\n", {"content": old}

    def _old(self, current, saved):
        return saved["content"]


class Chkconfig(BootMethod):
    name = "chkconfig"

    def _registered(self, service):
        return self.tools.run_all(["chkconfig", "--list", service], python_shell=False,
                                  ignore_retcode=True, output_loglevel="quiet")["retcode"] == 0

    def _chkconfig(self, flag, service):
        proc = self.tools.run_all(["chkconfig", flag, service], python_shell=False)
        if proc["retcode"] != 0:
            raise CommandExecutionError(f"chkconfig {flag} {service}: {proc['stderr']}")

    def disable_one(self, target, test):
        if not self._registered(target):
            return {}
        if not test:
            self.tools.save(target, {"method": self.name, "enabled": True})
            self._chkconfig("--del", target)
        return {target: {"old": "registered", "new": "deleted (chkconfig --del)"}}

    def restore(self, key, saved, test):
        if self._registered(key):
            return {}
        if not test:
            self._chkconfig("--add", key)
        return {key: {"old": "deleted", "new": "registered (chkconfig --add)"}}


class Service(BootMethod):
    """Salt's service module: systemd units, or SysV scripts via update-rc.d."""

    name = "service"

    def _ask(self, what, service):
        try:
            return bool(self.tools.service[what](service))
        except (KeyError, CommandExecutionError):
            return False

    def disable_one(self, target, test):
        # enabled() first: a converged host (sendmail disabled) then asks
        # systemd nothing more (available() costs two more systemctl runs).
        if not self._ask("enabled", target) or not self._ask("available", target):
            return {}
        if not test:
            self.tools.save(target, {"method": self.name, "enabled": True})
            if not self.tools.service["disable"](target):
                raise CommandExecutionError(f"could not disable service {target}")
        return {target: {"old": "enabled", "new": "disabled"}}

    def restore(self, key, saved, test):
        # A service removed since has nothing to enable.
        if not self._ask("available", key) or self.tools.service["enabled"](key):
            return {}
        if not test and not self.tools.service["enable"](key):
            raise CommandExecutionError(f"could not enable service {key}")
        return {key: {"old": "disabled", "new": "enabled"}}


# The boot methods a user names, and a journal record's "service".
METHODS = {"systemd": Service, "sysv": Service, "chkconfig": Chkconfig, "rcconf": RcConf,
           "sysconfig": Sysconfig, "irix": Irix, "service": Service}
NAMES = ("systemd", "sysv", "chkconfig", "rcconf", "sysconfig", "irix")


def names():
    """The boot methods a user names (``qmail:lookup:sendmail_boot``): the
    one list the settings and ``qmail_sendmail`` check against."""
    return NAMES


def method(name, tools):
    """The boot method ``name`` (one of ``NAMES``, or a journal record's
    ``method``), chosen once: ``systemd`` where systemd does not run is
    ``chkconfig`` when that exists."""
    if name == "systemd" and not tools.booted and tools.which("chkconfig"):
        name = "chkconfig"
    if name not in METHODS:
        raise SaltInvocationError(f"boot method {name!r} is not one of {NAMES}")
    return METHODS[name](tools)
