"""
The formula's settings: merge parameters and pillar, check every key, and
derive what the states need (e.g. the control files of the host's role).

``qmail/map.jinja`` calls ``qmail_settings.merge`` while rendering, so a bad
pillar value stops the whole run before the first state changes anything,
with an error that names the pillar key.
"""

import copy
import json
import os

from salt.exceptions import SaltInvocationError

try:  # Salt >= 3008 masks pillar values in output; the formula needs them plain.
    from salt.utils.secret import expose as _plain
except ImportError:  # pragma: no cover - older Salt has no masking

    def _plain(value):
        return value

__virtualname__ = "qmail_settings"

# Each concern checks its own pillar keys (and may add what its states need)
# in a ``check_settings(settings)`` of its execution module; all of them run
# before anything changes. A module that is not installed is skipped.
SECTION_CHECKS = (
    "qmail_build.check_settings",
    "qmail_sendmail.check_settings",
    "qmail_service.check_settings",
)


def __virtual__():
    return __virtualname__


def _merge(base, update):
    """Merge ``update`` into a copy of ``base``: mappings deeply, the rest replaced."""
    result = copy.copy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


def _type_name(value):
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number"}.get(
        type(value), type(value).__name__
    )


def _check_shape(default, given, key):
    """
    Check ``given`` (pillar) against the shape of ``default``: no unknown keys
    where the defaults fix the keys, and the same type for every value. An
    empty mapping or a null in the defaults accepts anything: those keys are
    checked by their own validators.
    """
    if default is None or given is None:
        return
    if isinstance(default, dict):
        if not isinstance(given, dict):
            raise SaltInvocationError(
                f"{key}: expected a mapping, got {_type_name(given)} {given!r}"
            )
        if not default:
            return
        for name, value in given.items():
            where = f"{key}:{name}"
            if name not in default:
                raise SaltInvocationError(
                    f"{where}: unknown key; known keys: " + ", ".join(sorted(default))
                )
            _check_shape(default[name], value, where)
        return
    if isinstance(default, bool) or isinstance(given, bool):
        if isinstance(default, bool) != isinstance(given, bool):
            raise SaltInvocationError(
                f"{key}: expected {_type_name(default)}, got {given!r}"
            )
        return
    if not isinstance(given, type(default)):
        raise SaltInvocationError(
            f"{key}: expected {_type_name(default)}, got {_type_name(given)} {given!r}"
        )


def _check_lookup(lookup):
    home = lookup["home"]
    if not os.path.isabs(home) or os.path.normpath(home) != home.rstrip("/") or (
        any(c in home for c in "\n\0")
    ):
        raise SaltInvocationError(
            f"qmail:lookup:home: {home!r} is not a plain absolute path"
        )


def _derive_control(settings):
    files = __salt__["qmail_control.derive"](
        settings["role"], settings["me"], settings["spool"] or None,
        settings["control"], key="qmail",
    )
    settings["control_managed"] = {n: v for n, v in files.items() if v is not None}
    settings["control_absent"] = sorted(n for n, v in files.items() if v is None)
    # Which of these files' changes qmail must be told of, and how: the
    # service states watch the control states named here.
    reload = {"hup": [], "restart": [], "newmrh": []}
    for name in sorted(files):
        action = __salt__["qmail_control.reload_action"](name)
        if action:
            reload[action].append(name)
    settings["control_reload"] = reload


def merge(defaults, os_family=None, pillar=None):
    """
    Merge the formula's ``defaults``, the ``os_family`` parameters and
    ``pillar`` (the ``qmail`` pillar; its ``lookup`` goes over the OS-level
    parameters), check every key, and add what the states need:

    - ``me``: pillar ``qmail:me`` or the minion's ``fqdn`` grain;
    - ``control_managed``: control file -> value for the host's role;
    - ``control_absent``: control files to remove;
    - ``control_reload``: ``hup``/``restart``/``newmrh`` -> the files among
      them whose change needs that (for the service states' requisites).

    Raises SaltInvocationError naming the pillar key on bad input.

    CLI Example::

        salt '*' qmail_settings.merge "{'role': 'spool', ...}"
    """
    pillar = _plain(pillar) if pillar is not None else {}
    # Every SLS file imports map.jinja, so one state run asks for the same
    # merge about ten times: check and derive once per run and input.
    grains = [__grains__.get(g) for g in ("id", "fqdn", "os_family", "osfinger", "osarch")]
    key = "qmail_settings.merge:" + json.dumps([defaults, os_family, pillar, grains],
                                               sort_keys=True, default=repr)
    if key not in __context__:
        __context__[key] = _merge_checked(defaults, os_family, pillar)
    return copy.deepcopy(__context__[key])


def _merge_checked(defaults, os_family, pillar):
    _check_shape(defaults, pillar, "qmail")
    settings = _merge(_merge(defaults, os_family or {}), pillar)
    _check_lookup(settings["lookup"])
    settings["me"] = settings["me"] or __grains__.get("fqdn") or __grains__["id"]
    _derive_control(settings)
    for check in SECTION_CHECKS:
        if check in __salt__:
            settings = __salt__[check](settings) or settings
    return settings


def show(pillar=None):
    """
    Show the merged, checked settings for this minion, from the parameters
    shipped with the formula and its pillar (what the SLS files see).

    CLI Example::

        salt '*' qmail_settings.show
    """
    import yaml  # pylint: disable=import-outside-toplevel

    def _yaml(path):
        text = __salt__["cp.get_file_str"](f"salt://qmail/parameters/{path}")
        return yaml.safe_load(text) if text else {}

    defaults = _yaml("defaults.yaml")
    os_family = _yaml(f"os_family/{__grains__['os_family']}.yaml")
    if pillar is None:
        pillar = __salt__["pillar.get"]("qmail", {}, unmask=True)
    return merge(defaults, os_family, pillar)
