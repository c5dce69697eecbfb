"""What e2e tests do with their hosts through the master, in one place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import buildcache
from .host import Host
from .master import LabMaster


class Fleet:
    """The hosts of one test module, by FQDN, and the master they obey."""

    def __init__(self, master: LabMaster, hosts: Iterable[Host]):
        self.master = master
        self.hosts = {h.fqdn: h for h in hosts}

    def apply(self, sls: str = "qmail", target: str | Sequence[str] = "*",
              test: bool = False) -> dict:
        """``salt TARGET state.apply SLS``; every state must succeed."""
        return self.master.apply_ok(target, sls, test=test)

    def converge(self, pillars: dict | None = None,
                 mail_users: dict[str, str] | None = None) -> Fleet:
        """What a module's fixture does first: give the hosts ``pillars``
        (when given), sync the formula's modules, apply ``qmail`` once (kept
        as ``first_apply``) and add the mail users ``{fqdn: user}`` with the
        Maildir that qmail delivers to."""
        if pillars is not None:
            self.master.set_pillar(pillars)
        self.master.sync_formula(list(self.hosts))
        self.first_apply = self.apply(target=list(self.hosts))
        self._check_prebuilt()
        for fqdn, user in (mail_users or {}).items():
            self.hosts[fqdn].add_mail_user(user)
        return self

    def _check_prebuilt(self) -> None:
        """Hosts given ``LabMaster.prebuilt`` installed the cached tree: a
        compile there would pass every test, only slowly."""
        for fqdn, states in self.first_apply.items():
            share = (((self.master.pillars.get(fqdn) or {}).get("qmail") or {})
                     .get("build") or {}).get("share") or {}
            if share.get("builder") != buildcache.CACHE_ID:
                continue
            build = next(v for v in states.values()
                         if v["__id__"] == "qmail-build-tree-qmail_build-installed")
            assert build["changes"].get("from") == f"shared:{buildcache.CACHE_ID}", (
                f"{fqdn} did not install the lab's prebuilt tree: {build['changes']}")

    def call(self, fqdn: str, fun: str, *args, **kwargs):
        """``salt FQDN FUN ARGS KWARGS``: that minion's return."""
        return self.master.salt(fqdn, fun, *args, **kwargs)[fqdn]


def changed(ret: dict) -> dict[str, list[str]]:
    """{minion: sorted IDs of the states that changed something} of a state.apply."""
    return {minion: sorted(v["__id__"] for v in states.values() if v["changes"])
            for minion, states in ret.items()}
