"""
States of the formula's ledger (issue 19): ``recorded`` lists what the
formula created (or can prove it created), ``removed`` takes away only what
the ledger lists, then forgets it. Everything else named by a setting stays.

.. code-block:: yaml

    qmail-service-tls-dir-ledger-recorded:
      qmail_ledger.recorded:
        - name: /etc/qmail-tls
        - kind: dirs
        - only: [key.pem, cert.pem, smtpd.pem]
        - require_in:
          - file: qmail-service-tls-dir-file-directory

    qmail-service-clean-tls-dir-ledger-removed:
      qmail_ledger.removed:
        - name: /etc/qmail-tls
        - kind: dirs
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "qmail_ledger"

# What a state says of names it leaves: (of one, of several).
LISTED = ("is in the ledger", "are in the ledger")


def __virtual__():
    if "qmail_ledger.record" in __salt__:
        return __virtualname__
    return (False, "the qmail_ledger execution module is not loaded")


def recorded(name, kind, ledger=None, only=None, marker=None, maintainer=None, source=None,
             entries=None):
    """
    ``name`` (a path, account, group or package) is in the ledger under
    ``kind``, when the host proves it is the formula's (see
    ``qmail_ledger.proves``; ``source``: the listed file ``name`` is
    compiled from); otherwise nothing is recorded and a clean will leave it
    (the state still succeeds, and says so).

    entries
        Several names of ``kind`` in one state (``name`` is then a label):
        the accounts of qmail's INSTALL.ids, say.
    """
    def one(entry):
        if __salt__["qmail_ledger.lists"](kind, entry, ledger=ledger):
            return None, LISTED
        if not __salt__["qmail_ledger.proves"](kind, entry, only=only, marker=marker,
                                               maintainer=maintainer, source=source,
                                               ledger=ledger):
            return None, (("is not installed: nothing for clean to put back",
                           "are not installed: nothing for clean to put back")
                          if kind == "displaced" else
                          ("was not made by the formula (it holds what the formula did "
                           "not write): not recorded, clean leaves it",
                           "were not made by the formula (they hold what the formula did "
                           "not write): not recorded, clean leaves them"))
        return entry, ""

    return _record_each(name, kind, ledger, entries, one, "")


def intended(name, kind, ledger=None, entries=None):
    """
    ``name`` (an account or group the next state creates) is in the ledger
    before it exists. Recorded only after it, an apply killed in between
    left the formula's own group unlisted and without members yet, and the
    next render refused it as somebody else's. What exists already is left
    to ``recorded``, which adopts only what proves to be qmail's.

    entries
        Several names of ``kind`` in one state (``name`` is then a label).
    """
    def one(entry):
        if __salt__["qmail_ledger.lists"](kind, entry, ledger=ledger):
            return None, LISTED
        if __salt__["qmail_ledger.present"](kind, entry):
            return None, ("exists: recorded after its state only if it proves to be qmail's",
                          "exist: recorded after their states only if they prove to be "
                          "qmail's")
        return entry, ""

    return _record_each(name, kind, ledger, entries, one, " before it is created")


def _record_each(name, kind, ledger, entries, decide, when):
    """Record (or say it would, under test) each of ``entries`` (default:
    ``name``) that ``decide`` returns; ``decide(entry)`` gives the entry to
    record, or None and what to say of it (of one, of several)."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    names = [name] if entries is None else list(entries)
    chosen, left = [], {}
    for entry in names:
        pick, why = decide(entry)
        if pick is None:
            left.setdefault(why, []).append(entry)
        else:
            chosen.append(pick)
    if not chosen:
        label = "package" if kind == "displaced" else kind
        ret["comment"] = "; ".join(f"{label} {', '.join(them)} {why[len(them) > 1]}"
                                   for why, them in left.items())
        return ret
    recorded = chosen[0] if entries is None else chosen
    ret["changes"] = {"recorded": {kind: recorded}}
    listed = ", ".join(chosen)
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{kind} {listed} would be recorded in the ledger{when}"
        return ret
    for entry in chosen:
        __salt__["qmail_ledger.record"](kind, entry, ledger=ledger)
    ret["comment"] = f"{kind} {listed} recorded in the ledger{when}"
    return ret


def removed(name, kind, ledger=None, only=None, marker=None, maintainer=None):
    """
    ``name`` is removed from the host and forgotten, if the ledger lists
    it and it still is what the formula made (a folder holding only
    ``only``, a file with ``marker``, the package of ``maintainer``, an
    account without a login shell); anything else is left as it is.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["qmail_ledger.lists"](kind, name, ledger=ledger):
        ret["comment"] = f"{kind} {name} is not in the ledger: left as it is"
        return ret
    present = __salt__["qmail_ledger.present"](kind, name)
    if present and not __salt__["qmail_ledger.still_made"](kind, name, only=only,
                                                          marker=marker,
                                                          maintainer=maintainer):
        ret["comment"] = (f"{kind} {name} is in the ledger but no longer what the formula "
                          "made (other files, a login shell, another package): left as it is")
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"removed": {kind: name}} if present else {"forgotten": {kind: name}}
        ret["comment"] = f"{kind} {name} would be removed and forgotten"
        return ret
    if present:
        __salt__["qmail_ledger.remove"](kind, name)
        ret["changes"]["removed"] = {kind: name}
        if __salt__["qmail_ledger.present"](kind, name):
            ret["result"] = False
            ret["comment"] = f"{kind} {name} could not be removed"
            return ret
    __salt__["qmail_ledger.forget"](kind, name, ledger=ledger)
    ret["changes"]["forgotten"] = {kind: name}
    ret["comment"] = f"{kind} {name} removed and forgotten"
    return ret


def restored(name, ledger=None):
    """
    Package ``name``, listed under ``displaced`` (installing one of the
    formula's packages made apt remove it), is installed again and
    forgotten; a package the ledger does not list is left as it is. Run it
    after the formula's package is purged: the two conflict.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["qmail_ledger.lists"]("displaced", name, ledger=ledger):
        ret["comment"] = f"package {name} was not displaced by the formula: left as it is"
        return ret
    present = __salt__["qmail_ledger.present"]("displaced", name)
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"forgotten": {"displaced": name}} if present else {
            "installed": name, "forgotten": {"displaced": name}}
        ret["comment"] = f"package {name} would be put back and forgotten"
        return ret
    if not present:
        try:
            back = __salt__["qmail_ledger.put_back"](name)
        except CommandExecutionError as exc:  # apt's own words: no candidate, ...
            back, why = False, f": {exc}"
        else:
            why = ""
        if not back:
            ret["result"] = False
            ret["comment"] = f"package {name} could not be installed again{why}"
            return ret
        ret["changes"]["installed"] = name
    __salt__["qmail_ledger.forget"]("displaced", name, ledger=ledger)
    ret["changes"]["forgotten"] = {"displaced": name}
    ret["comment"] = f"package {name} put back and forgotten"
    return ret
