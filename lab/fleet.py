"""What e2e tests do with their hosts through the master, in one place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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

    def call(self, fqdn: str, fun: str, *args, **kwargs):
        """``salt FQDN FUN ARGS KWARGS``: that minion's return."""
        return self.master.salt(fqdn, fun, *args, **kwargs)[fqdn]


def changed(ret: dict) -> dict[str, list[str]]:
    """{minion: sorted IDs of the states that changed something} of a state.apply."""
    return {minion: sorted(v["__id__"] for v in states.values() if v["changes"])
            for minion, states in ret.items()}
