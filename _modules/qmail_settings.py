"""
The formula's settings: merge the parameters (``qmail/parameters/``) and
the ``qmail`` pillar, check every key, and derive what the states need
(e.g. the control files of the host's role, qmail-smtpd's command lines).

This module is the one reader of the pillar and the one owner of its schema.
The SLS files (and ``qmail/map.jinja``) call ``show`` while rendering
(merged once per state run), so a bad pillar value stops the whole run
before the first state changes anything, with an error that starts with the
full pillar key. The other execution modules ask ``get`` for a setting only
when the caller left an argument out; this module calls none of them (no
circle through the loader): the checks and derivations per area are
functions of ``_utils`` (``qmail_settings_lookup``, ``_build``, ``_mail``,
``_smtpd``, with the catalogues ``qmail_control_files``,
``qmail_build_inputs`` and ``qmail_tcprules``), all on the shared validators
of ``_utils/qmail_validate.py``; what needs the minion (grains, the file
server, the host's files and accounts: ``qmail_owner``) is called from here.

``null`` in the pillar means "the default" for every key, except the
entries of ``qmail:control`` and ``qmail:aliases``, where it removes the
file.
"""

import functools
import logging
import os

import salt.utils.data
import salt.utils.dictupdate
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # Salt >= 3008 masks pillar values in output; the formula needs them plain.
    from salt.utils.secret import expose as _plain
except ImportError:  # pragma: no cover - older Salt has no masking

    def _plain(value):
        return value

log = logging.getLogger(__name__)

__virtualname__ = "qmail_settings"

ROLES = ("spool", "client")
# What the formula's install puts into the qmail home besides queue/,
# control/, users/ and alias/ (whose contents belong to the mail system).
INSTALLED_DIRS = ("bin", "boot", "doc", "man")
# Keys whose entries may be null: null there removes a file.
NULL_REMOVES = ("qmail:control", "qmail:aliases")
# Keys that were renamed: an old pillar that still sets one (even to null)
# is refused with the new name, rather than silently losing its value.
RENAMED = {"qmail:lookup:sendmail_record": "qmail:lookup:sendmail_journal"}


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _validators():
    """The shared validators' getter for the checks in ``_utils`` (which have
    no loader of their own): ``qmail_validate.plain``, one loader call per
    name."""
    return functools.lru_cache(maxsize=None)(__utils__["qmail_validate.plain"])


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


# --------------------------------------------------------------------------
# Shape: nulls, unknown keys, types
# --------------------------------------------------------------------------
def _merge(base, update):
    """Merge ``update`` into a copy of ``base``: mappings deeply, the rest
    (lists too) replaced, as template-formula's map does."""
    return salt.utils.dictupdate.merge(base, update, strategy="recurse", merge_lists=False)


def _drop_nulls(value, key):
    """A copy of pillar ``value`` without null entries (null = the default),
    but where null removes a file."""
    if not isinstance(value, dict):
        return value
    return {
        name: _drop_nulls(item, f"{key}:{name}")
        for name, item in value.items()
        if item is not None or key in NULL_REMOVES
    }


def _check_renamed(pillar):
    """Refuse every key of RENAMED that ``pillar`` (the ``qmail`` pillar) sets."""
    for old, new in RENAMED.items():
        value = {"qmail": pillar}
        for name in old.split(":"):
            if not isinstance(value, dict) or name not in value:
                break
            value = value[name]
        else:
            _fail(old, f"renamed: it is now {new} (same meaning, same file)")


def _check_shape(default, given, key):
    """
    Check ``given`` (pillar) against the shape of ``default``: no unknown keys
    where the defaults fix the keys, and the same type for every value. An
    empty mapping in the defaults accepts any keys: those are checked by
    their own validators.
    """
    type_name = _v("type_name")
    if given is None:  # left by _drop_nulls only where null removes a file
        return
    if isinstance(default, dict):
        if not isinstance(given, dict):
            _fail(key, f"expected a mapping, got {type_name(given)} {given!r}")
        if not default:
            return
        for name, value in given.items():
            where = f"{key}:{name}"
            if name not in default:
                _fail(where, "unknown key; known keys: " + ", ".join(sorted(default)))
            _check_shape(default[name], value, where)
        return
    if isinstance(default, bool) or isinstance(given, bool):
        if isinstance(default, bool) != isinstance(given, bool):
            _fail(key, f"expected {type_name(default)}, got {given!r}")
        return
    if not isinstance(given, type(default)):
        _fail(key, f"expected {type_name(default)}, got {type_name(given)} {given!r}")


# --------------------------------------------------------------------------
# Role, names and control files
# --------------------------------------------------------------------------
def _me(settings):
    if settings["me"] != "":
        return _v("fqdn")(settings["me"], "qmail:me")
    for grain in ("fqdn", "id"):
        name = __grains__.get(grain)
        if _v("is_host")(name) and "." in name and not name.split(".")[-1].isdigit():
            return name
    _fail("qmail:me", f"the minion's fqdn grain {__grains__.get('fqdn')!r} is no fully "
                      "qualified host name; set qmail:me")
    return None


def _check_control_places(settings):
    """A folder (or other non-file) where a control file belongs fails now,
    before any file is written."""
    directory = os.path.join(settings["lookup"]["home"], "control")
    for name in sorted(settings["control_managed"]) + settings["control_absent"]:
        path = os.path.join(directory, name)
        if os.path.lexists(path) and not (os.path.islink(path) or os.path.isfile(path)):
            _fail(f"qmail:control:{name}",
                  f"{path} is a folder or special file, not a control file; move it away")


def _derive_control(settings, v):
    _v("one_of")(settings["role"], ROLES, "qmail:role")
    settings["me"] = _me(settings)
    if settings["spool"] != "" or settings["role"] == "client":
        if settings["spool"] == "":
            _fail("qmail:spool", "the client role needs the spool host's name")
        _v("mail_host")(settings["spool"], "qmail:spool")
    files = __utils__["qmail_control_files.derive"](
        settings["role"], settings["me"], v,
        settings["spool"] or None, settings["control"], key="qmail",
    )
    settings["control_managed"] = {n: text for n, text in files.items() if text is not None}
    settings["control_absent"] = sorted(n for n, text in files.items() if text is None)
    _check_control_places(settings)
    # Which of these files' changes qmail must be told of, and how: the
    # service states watch the control states named here.
    reload = {"hup": [], "restart": [], "newmrh": []}
    for name in sorted(files):
        action = __utils__["qmail_control_files.reload_action"](name)
        if action:
            reload[action].append(name)
    settings["control_reload"] = reload
    __utils__["qmail_settings_mail.check_percenthack"](v, settings)


# --------------------------------------------------------------------------
# source, build, aliases, delivery: qmail.users, qmail.build, qmail.aliases
# (_utils/qmail_settings_build.py, _utils/qmail_settings_mail.py)
# --------------------------------------------------------------------------
def _build_settings(settings, v):
    lookup = settings["lookup"]
    home = lookup["home"]
    presets, parse_hash = (__utils__["qmail_build_inputs.presets"](),
                           __utils__["qmail_build_inputs.parse_hash"])
    source = settings["build_source"] = __utils__["qmail_settings_build.check_source"](
        v, settings["source"], presets, parse_hash)
    # qmail:source:patches (_utils/qmail_patches.py): the stack for this preset.
    source["patches"] = __utils__["qmail_patches.check_stack"](
        settings["source"]["patches"], source["preset"], tuple(presets),
        {check: v(check) for check in __utils__["qmail_patches.validators"]()}, parse_hash)
    if lookup["patch_package"] != "":
        v("deb_name")(lookup["patch_package"], "qmail:lookup:patch_package")
    build = settings["build"]
    __utils__["qmail_settings_build.check_build"](v, build, home)
    if build["share"]["builder"] and not settings["build_source"]["runtime_ids"]:
        _fail("qmail:build:share:builder",
              f"{settings['build_source']['preset']} bakes account ids into its binaries: "
              "its builds cannot be shared; leave builder empty")
    settings["build_conf"] = __utils__["qmail_build_inputs.conf_files"](
        home, lookup["users"], lookup["groups"], build["conf"], v)
    settings["build_remove"] = [os.path.join(home, d) for d in INSTALLED_DIRS] + [
        os.path.join(home, "rc"), __utils__["qmail_install.record_path"](home),
        build["workdir"],
    ]
    settings["accounts_groups"], settings["accounts_users"] = __utils__[
        "qmail_settings_lookup.accounts"](lookup)
    mail = "qmail_settings_mail"
    settings["aliases_files"], settings["aliases_maildirs"] = __utils__[
        f"{mail}.check_aliases"](v, settings["aliases"], home)
    settings["delivery_arg"] = __utils__[f"{mail}.check_delivery"](v, settings["delivery"])


# --------------------------------------------------------------------------
# sendmail: qmail.sendmail
# --------------------------------------------------------------------------
def _sendmail_settings(settings):
    lookup = settings["lookup"]
    boot = lookup["sendmail_boot"]
    home = lookup["home"]
    state_dir = os.path.dirname(lookup["sendmail_journal"])
    package = lookup["sendmail_mta_package"]
    alternatives = lookup["sendmail_alternatives"]
    settings["sendmail"] = {
        "frontend": os.path.join(home, "bin", "sendmail"),
        "also": [],  # qmail's other front ends (qmail_filter.derive)
        "qread": os.path.join(home, "bin", "qmail-qread"),
        "journal": lookup["sendmail_journal"],
        "mailer_conf": [lookup["sendmail_mailer_conf"]] if lookup["sendmail_mailer_conf"] else [],
        "boot_path": {"rcconf": lookup["sendmail_rc_conf"],
                      "sysconfig": lookup["sendmail_sysconfig"],
                      "irix": lookup["sendmail_irix_config"]}.get(boot),
        "alternatives": [
            dict(a, slaves=[dict(s, target=os.path.join(home, "bin", s["program"]))
                            for s in a["slaves"]])
            for a in alternatives
        ],
        # Links that the alternatives steps point to qmail's sendmail.
        "alternative_links": [a["link"] for a in alternatives] + [
            s["link"] for a in alternatives for s in a["slaves"] if s["program"] == "sendmail"],
        # One hand-over of sendmail's queue at a time (beside the journal).
        "mqueue_lock": os.path.join(state_dir, "mqueue.lock"),
        "mta_package": [{
            "name": package,
            "dir": os.path.join(state_dir, package),
            "deb": os.path.join(state_dir, f"{package}.deb"),
        }] if package else [],
    }


# --------------------------------------------------------------------------
# service and tls: qmail.service, qmail.service.tls (_utils/qmail_settings_smtpd.py)
# --------------------------------------------------------------------------
def _service_settings(settings, v):
    # What the checks in _utils call is resolved here: they run outside this
    # module's loader context (no __utils__, no __grains__ there).
    # (Which releases have no tlswrapper is a parameters layer,
    # osfinger/Debian-11.yaml: lookup:service:tlswrapper_missing.)
    tcp_rules = __utils__["qmail_tcprules.tcp_rules"]
    service = settings["service"]
    # qmail:ipv6 (issue 22): tcpserver on IPv6 too; IPv6 relay clients.
    service.update(__utils__["qmail_ipv6.service_settings"](
        settings["ipv6"], service["smtpd"] if settings["role"] == "spool" else "off",
        settings["lookup"]["service"]["ipv6_package"]))
    six = functools.partial(__utils__["qmail_ipv6.relay_address"], enabled=settings["ipv6"])
    __utils__["qmail_settings_smtpd.service_settings"](
        v, settings,
        tcp_rules=lambda clients: tcp_rules(clients, v, "qmail:relay_clients", six),
        check_pair=__utils__["qmail_tls.check_pair"],
        supervisors=__utils__["qmail_supervisors.supervisors"](),
        # qmail-smtpd's own wait when control/timeoutsmtpd is absent (the
        # control files' catalogue: qmail's default, in one place).
        smtpd_timeout=__utils__["qmail_control_files.default"]("timeoutsmtpd", None))


# --------------------------------------------------------------------------
# beacon: what the qmail_queue beacon reads (qmail.service writes it)
# --------------------------------------------------------------------------
def _beacon_settings(settings):
    """The beacon's file beside the ledger (the formula's own folder) and
    what it holds: the home, the merged role, qmail-smtpd's port (None where
    none runs)."""
    service = settings["service"]
    settings["beacon"] = {
        "file": os.path.join(os.path.dirname(settings["lookup"]["ledger"]), "beacon.json"),
        "host": {"home": settings["lookup"]["home"], "role": settings["role"],
                 "smtpd_port": service["smtpd_port"] if service["smtpd_mode"] != "off"
                 else None},
    }


# --------------------------------------------------------------------------
# qmail:submission and qmail:smarthost (the SMTP AUTH patch;
# _utils/qmail_submission.py)
# --------------------------------------------------------------------------
def _submission_settings(settings, v):
    """The schema in ``_utils/qmail_submission.py``; here the files' places
    (qmail-smtpsd's wrapper reads ``submission:files:wrapper``)."""
    paths = settings["lookup"]["service"]
    paths["cvm_bin"] = v("path")(paths["cvm_bin"], "qmail:lookup:service:cvm_bin")
    if paths["cvm_package"] != "":
        v("deb_name")(paths["cvm_package"], "qmail:lookup:service:cvm_package")
    v("string")(paths["cvm_missing"], "qmail:lookup:service:cvm_missing", empty_ok=True,
                max_length=200)
    patched = [p["hash"] for p in settings["build_source"]["patches"]]
    sub = __utils__["qmail_submission.check_submission"](settings, v, patched)
    __utils__["qmail_submission.check_smarthost"](settings, v, patched)
    # Beside qmail-smtpsd's run script: qmail.service.clean removes them with it.
    folder = os.path.join(settings["lookup"]["home"], "supervise", "qmail-smtpsd")
    sub["dir"] = folder
    sub["files"] = {"wrapper": os.path.join(folder, "submission"),
                    "authenticated": os.path.join(folder, "authenticated"),
                    "passwd": os.path.join(folder, "passwd")}


# --------------------------------------------------------------------------
# Ownership: what the values point at is the formula's (issue 19)
# --------------------------------------------------------------------------
def _check_owns_not_in_pillar(pillar):
    """The ownership rules are the formula's parameters, never pillar data."""
    if isinstance(pillar, dict) and pillar.get("owns") is not None:
        _fail("qmail:owns", "set by the formula's parameters (qmail/parameters/), not by the "
                            "pillar: the pillar cannot widen what the formula may touch")


def _check_ownership(settings, defaults, layers):
    """After every form check: each value points at something the formula
    owns (``_utils/qmail_owner.py``; rules in parameters ``owns``)."""
    lookup = settings["lookup"]
    ledger = _v("path")(lookup["ledger"], "qmail:lookup:ledger")
    _v("own_dir")(os.path.dirname(ledger), "qmail:lookup:ledger")
    if os.path.isdir(ledger):
        _fail("qmail:lookup:ledger", f"{ledger} is a folder, not a file")
    lookup["ledger"] = ledger
    default_lookup = _merge(defaults.get("lookup", {}), (layers or {}).get("lookup", {}))
    scratch = __utils__["qmail_owner.scratch_roots"](__opts__.get("qmail_scratch_roots"))
    __utils__["qmail_owner.check"](settings, settings["owns"], default_lookup, scratch)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------
def merge(defaults=None, layers=None, pillar=None):
    """
    Merge the formula's ``defaults``, the ``layers`` (the parameters of this
    minion's os_family and osfinger files, merged in that order) and
    ``pillar`` (the ``qmail`` pillar; its ``lookup`` goes over the OS-level
    parameters), check every key, and add what the states need:

    - ``me``: pillar ``qmail:me`` or the minion's ``fqdn`` grain;
    - ``control_managed``: control file -> value for the host's role;
    - ``control_absent``: control files to remove;
    - ``control_reload``: ``hup``/``restart``/``newmrh`` -> the files among
      them whose change needs that (for the service states' requisites);
    - ``build_source``, ``build_conf``, ``build_remove``,
      ``accounts_groups``/``accounts_users``, ``aliases_files``,
      ``aliases_maildirs``, ``delivery_arg`` (qmail.users/build/aliases);
    - ``sendmail`` (qmail.sendmail) and ``service:*`` (qmail.service);
    - ``beacon``: the file the qmail_queue beacon reads and what it holds;
    - ``parameters``: the files of ``parameters/`` merged (without
      ``defaults``: read from the file server).

    Raises SaltInvocationError naming the pillar key on bad input.

    CLI Example::

        salt '*' qmail_settings.merge pillar="{role: client, spool: mail.example.org}"

    Without ``defaults``, the parameters shipped with the formula (and this
    minion's layers, ``parameters/map_jinja.yaml``) are used, as ``show``
    does.
    """
    if defaults is None:
        defaults, layers = _parameters()
    pillar = _plain(pillar) if pillar is not None else {}
    return _merge_checked(defaults, layers, pillar)


def _merge_checked(defaults, layers, pillar):
    _check_renamed(pillar)
    _check_owns_not_in_pillar(pillar)
    pillar = _drop_nulls(pillar, "qmail")
    _check_shape(defaults, pillar, "qmail")
    layers = dict(layers or {})
    read = layers.pop("parameters", None)
    # The derivations below add to the settings: copy what they hold of the
    # pillar (new dicts and lists; strings and numbers are immutable).
    settings = _copy(_merge(_merge(defaults, layers), pillar))
    v = _validators()
    __utils__["qmail_settings_lookup.check_lookup"](v, settings["lookup"],
                                                    __utils__["qmail_boot.names"]())
    __utils__["qmail_settings_lookup.check_tofs"](v, settings["tofs"])
    _derive_control(settings, v)
    _build_settings(settings, v)
    _sendmail_settings(settings)
    _submission_settings(settings, v)
    _service_settings(settings, v)
    _check_ownership(settings, defaults, layers)
    _beacon_settings(settings)
    _filter_settings(settings, v)
    if read is not None:
        settings["parameters"] = read
    return settings


def _filter_settings(settings, v):
    """qmail:filter (issue 23): its schema lives in _utils/qmail_filter.py;
    its folder is one the formula owns, as TLS's (``/etc/qmail*``)."""
    __utils__["qmail_filter.derive"](settings, v, __utils__["qmail_filter_keys.check"])
    lookup = settings["lookup"]
    scratch = __utils__["qmail_owner.scratch_roots"](__opts__.get("qmail_scratch_roots"))
    __utils__["qmail_owner.place"](
        lookup["filter"]["dir"], "qmail:lookup:filter:dir", "tls", settings["owns"],
        lookup["home"], scratch)
    # The daemon makes its socket's folder (and removes it when it stops).
    __utils__["qmail_owner.place"](
        os.path.dirname(lookup["filter"]["socket"]), "qmail:lookup:filter:socket", "runtime",
        settings["owns"], lookup["home"], scratch)


def _parameters(tplroot="qmail"):
    """
    defaults.yaml and the layers ``map_jinja.yaml`` lists, from the file
    server: ``(defaults, layers)``, the layers merged in their order (a
    later one over an earlier) with ``parameters``, the files read.
    """
    import yaml  # pylint: disable=import-outside-toplevel

    # map.jinja takes tplroot from the importing SLS file's folder: an SLS
    # outside the formula's folder (a top-level one of the user's) gives ".".
    if tplroot in ("", "."):
        tplroot = "qmail"

    def _yaml(path, required):
        url = f"salt://{tplroot}/parameters/{path}"
        text = __salt__["cp.get_file_str"](url)
        if not text and required:
            raise SaltInvocationError(f"{url} cannot be read: is the qmail formula in this "
                                      "minion's file roots (saltenv)?")
        # libyaml's loader where PyYAML has it: a tenth of the pure Python
        # one's time, the same safe constructors.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if (
            text) else {}

    # One listing (the file server's, cached), then only the layer files
    # that exist: asking for a missing one would log an error every run.
    prefix = f"{tplroot}/parameters/"
    listed = __utils__["qmail_runcache.listing"](_run_context(), __salt__["cp.list_master"],
                                                 prefix, saltenv=__opts__.get("saltenv") or "base")
    present = {p[len(prefix):] for p in listed}
    read = ["defaults.yaml"]
    layers = {}
    for grain in _yaml("map_jinja.yaml", True)["layers"]:
        path = f"{grain}/{__grains__.get(grain)}.yaml"
        if path in present:
            read.append(path)
            layers = _merge(layers, _yaml(path, False))
    return _yaml("defaults.yaml", True), dict(layers, parameters=read)


def _copy(value):
    """A copy of merged settings: new dicts and lists, the same strings and
    numbers (a tenth of copy.deepcopy's time on a 100,000-entry list)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):  # no call per string: rcpthosts can hold 100,000
        return [_copy(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def show(pillar=None, tplroot="qmail"):
    """
    Show the merged, checked settings for this minion, from the parameters
    shipped with the formula (``<tplroot>/parameters/``) and its pillar:
    what the SLS files see (each calls this, as map.jinja does), with
    ``smarthost:password`` redacted (``get`` gives it to the one state that
    writes it).

    Without ``pillar``, the result is computed once per state run: every SLS
    file asks, so a run asks for it about ten times, always with the same
    parameters, grains and pillar.

    CLI Example::

        salt '*' qmail_settings.show
    """
    if pillar is not None:
        settings = merge(*_parameters(tplroot), pillar)
    else:
        settings = _copy(_this_run(tplroot))
    # The smarthost's password stays out of the SLS files and this output:
    # its state asks ``get`` (README: Mail from anywhere).
    settings["smarthost"] = __utils__["qmail_submission.redacted"](settings["smarthost"])
    return settings


def _this_run(tplroot):
    """The settings of this state run, merged once (callers copy)."""
    run = _run_context()
    key = f"qmail_settings.show:{tplroot}"
    refused, error = __utils__["qmail_runcache.lookup"](run, f"{key}:refused")
    if refused:
        raise error
    found, settings = __utils__["qmail_runcache.lookup"](run, key)
    if not found:
        try:
            settings = merge(*_parameters(tplroot),
                             __salt__["pillar.get"]("qmail", {}, unmask=True))
        except (SaltInvocationError, CommandExecutionError) as exc:
            # Refused once is refused for the whole run: the other SLS files
            # of the run fail with the same error without checking it again.
            __utils__["qmail_runcache.store"](run, f"{key}:refused", exc)
            raise
        __utils__["qmail_runcache.store"](run, key, settings)
    return settings


def get(key, tplroot="qmail"):
    """
    One value of the merged, checked settings (``show``), by its
    colon-separated path: the defaults the formula's execution modules use
    for an argument the caller left out come from here, so each lives only
    in parameters/ (or is derived here).

    CLI Example::

        salt '*' qmail_settings.get lookup:home
        salt '*' qmail_settings.get sendmail:mqueue_lock
    """
    missing = object()
    value = salt.utils.data.traverse_dict_and_list(_this_run(tplroot), key, missing)
    if value is missing:
        raise SaltInvocationError(f"key: the formula's settings have no {key!r}")
    return _copy(value)


def _run_context():
    """This state run's context dict (see _utils/qmail_runcache.py)."""
    return __context__.value() if hasattr(__context__, "value") else __context__
