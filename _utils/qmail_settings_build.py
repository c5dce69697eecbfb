"""
The settings of ``qmail:source`` and ``qmail:build`` (what qmail.build
compiles and where), checked for ``qmail_settings.merge`` (``__utils__``)
against the releases of ``_utils/qmail_build_inputs.py``.

The loader gives ``_utils`` modules no ``__utils__``: ``qmail_settings``
passes ``v``, the getter of the shared validators
(``_utils/qmail_validate.py``), and whatever else a check needs.
"""


from salt.exceptions import SaltInvocationError

# A compiler or linker command: words of flags and paths, no shell syntax.
_CC_RE = r"[A-Za-z0-9 ._+=/,:-]{1,200}"


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def check_source(v, source, presets, parse_hash):
    """``qmail:source`` against ``presets`` (the releases the formula knows,
    ``qmail_build_inputs.presets``); ``parse_hash`` is
    ``qmail_build_inputs.parse_hash``."""
    name = v("one_of")(source["preset"], tuple(presets), "qmail:source:preset")
    preset = presets[name]
    url = source["url"]
    # A file:// URL becomes its path: one canonical form for the record.
    url = preset["url"] if url == "" else v("source_url")(url, "qmail:source:url")
    if url != preset["url"] and source["hash"] == "":
        _fail("qmail:source:hash", "required: a source other than the preset's needs its hash")
    if source["hash"] != "":
        v("string")(source["hash"], "qmail:source:hash")
    algo, digest = parse_hash(source["hash"] or preset["hash"])
    return {
        "preset": name,
        "url": url,
        "hash": f"{algo}={digest}",
        "runtime_ids": preset["runtime_ids"],
        "errno_fix": preset["errno_fix"],
        "alloc_fix": preset.get("alloc_fix", False),
        "implicit_fix": preset.get("implicit_fix", False),
    }


def check_build(v, build, home):
    conf = build["conf"]
    key = "qmail:build:conf"
    for name in ("cc", "ld"):
        v("matches")(conf[name], f"{key}:{name}", _CC_RE,
                      "a command of words (letters, digits, space and . _ + = / , : -)")
    conf["spawn"] = v("integer")(conf["spawn"], f"{key}:spawn", 1, 255)
    conf["split"] = v("integer")(conf["split"], f"{key}:split", 1, 1000)
    v("matches")(conf["patrn"], f"{key}:patrn", "[0-7]{3}", "three octal digits")
    v("matches")(conf["break"], f"{key}:break", "[!-.0-~]", "one printable character but /")
    # qmail.build.clean deletes the workdir: it must be a folder of its own.
    workdir = v("own_dir")(build["workdir"], "qmail:build:workdir")
    inside = v("inside")
    if inside(workdir, home) or inside(home, workdir):
        _fail("qmail:build:workdir",
              f"{workdir!r} and the qmail home {home!r} must not hold one another")
    build["workdir"] = workdir
    share = build["share"]
    if share["builder"] != "":
        v("minion_id")(share["builder"], "qmail:build:share:builder")
    share["wait"] = v("integer")(share["wait"], "qmail:build:share:wait", 0, 86400)
