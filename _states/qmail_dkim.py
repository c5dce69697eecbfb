"""
The DKIM keys of ``qmail:filter``: exactly the pillar's selectors, each key
made on the spool or written from the pillar, and the DNS TXT records to
publish in the comment. Key material never reaches ``changes`` or the
comment.

.. code-block:: yaml

    qmail-filter-dkim-keys-qmail_dkim-keys_managed:
      qmail_dkim.keys_managed:
        - name: /etc/qmail-filter/dkim
        - keys: {example.org: {s2026: ''}}
        - user: qmaild
"""

__virtualname__ = "qmail_dkim"


def __virtual__():
    if "qmail_dkim.planned" in __salt__:
        return __virtualname__
    return (False, "the qmail_dkim execution module is not loaded")


def _records(name, keys):
    lines = []
    for domain in sorted(keys):
        try:
            records = __salt__["qmail_dkim.dns_record"](domain, keys_dir=name)
        except Exception:  # noqa: BLE001 - a key not made yet (test=True) has none
            continue
        lines.extend(f"{dns} TXT \"{value}\"" for dns, value in sorted(records.items()))
    return lines


def keys_managed(name, keys, user=None):
    """
    Key folder ``name`` holds the keys of ``keys`` (``{domain: {selector:
    PEM text or ''}}``), owned by ``user`` with mode 0400, and no other.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    plan = __salt__["qmail_dkim.planned"](name, keys, user)
    changes = {what: files for what, files in plan.items() if files}
    if not changes:
        records = _records(name, keys)
        ret["comment"] = "DKIM keys in place; publish in DNS:\n" + "\n".join(records)
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "DKIM keys would change: " + "; ".join(
            f"{what} {', '.join(files)}" for what, files in changes.items())
        return ret
    try:
        __salt__["qmail_dkim.managed"](name, keys, user)
    except OSError as exc:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = f"DKIM keys in {name}: {exc}"
        return ret
    ret["comment"] = "DKIM keys changed; publish in DNS:\n" + "\n".join(_records(name, keys))
    return ret
