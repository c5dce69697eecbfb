"""
Values computed once per state run: every SLS file of the formula asks
``qmail_settings.show`` for the same settings and the same file server listing,
and within one run neither can change.

Salt's state module hands each run a copy of the loader's ``__context__``
(``dict(__context__)``), so an entry is marked with the dict it was made
in: one copied over from an earlier run, or made by a command line call in a
long-lived ``salt-call``/``Caller``, belongs to another dict and is made anew.

Callers pass the plain dict (``__context__.value()``): a loader-injected
``__context__`` used from here would resolve to the utils loader's own.
"""


def lookup(context, key):
    """``(True, value)`` when this run stored ``key``, else ``(False, None)``."""
    owner, value = context.get(key, (None, None))
    return (True, value) if owner == id(context) else (False, None)


def store(context, key, value):
    """Keep ``value`` for the rest of this run; returns it."""
    context[key] = (id(context), value)
    return value


def listing(context, list_master, prefix, saltenv="base"):
    """The file server's paths under ``prefix``, as a set: one
    ``cp.list_master`` (``list_master``, the caller's) per run for its top
    folder, so the parameters and the TOFS files of ``qmail/`` cost the run
    one round trip to the master, not one each."""
    top = prefix.strip("/").split("/")[0] + "/"
    key = f"qmail_runcache.listing:{saltenv}:{top}"
    found, listed = lookup(context, key)
    if not found:
        listed = store(context, key, frozenset(list_master(saltenv=saltenv, prefix=top)))
    return {path for path in listed if path.startswith(prefix)}
