"""
Run one Salt function per case, for many cases in one Salt process: a
masterless minion's ``Caller``, the pillar of each case passed as the
pillar override. Used by the tables of bad pillars (the corpus, and those
of control, build, service and sendmail), so that a case costs a fraction
of a second, not a ``salt-call`` start.

    python render_many.py MINION_CONFIG_DIR CASES.json RESULTS.json

CASES.json: a list of cases ``{"pillar": {"qmail": {...}}, "fun": ...,
"args": [...], "kwargs": {...}, "grains": {...}, "watch": PATH}``, all optional:
``fun`` defaults to ``state.show_sls`` and ``args``
to ``["qmail"]``. ``grains`` are static grains for that case (a Caller per
set of grains); ``watch`` a folder whose snapshot (see ``snapshot``) is
taken after the call, to prove that the call changed nothing there.

RESULTS.json: per case ``{"errors": [...]}`` (render errors as Salt returns
them), ``{"states": N, "changed": [IDs]}`` (a state return: it rendered),
``{"return": ...}`` (any other function), or ``{"exception":
"<traceback>"}``; with ``"snapshot"`` when the case has a ``watch``.
"""

import hashlib
import json
import logging
import os
import pathlib
import sys
import traceback


def snapshot(root):
    """Every path under ``root``: its type or content hash, mode, owner,
    inode and mtime, as a JSON-able dict (``{}`` when ``root`` is absent)."""
    result = {}
    root = pathlib.Path(root)
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content = "-> " + os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = oct(st.st_mode)
        result[str(path.relative_to(root))] = [content, st.st_mode, st.st_uid, st.st_ino,
                                               st.st_mtime_ns]
    return result


def _result(ret):
    if isinstance(ret, list):
        return {"errors": [str(e) for e in ret]}
    if isinstance(ret, dict) and all(isinstance(v, dict) for v in ret.values()):
        return {"states": len(ret),
                "changed": sorted(str(v.get("__id__", k)) for k, v in ret.items()
                                  if v.get("changes"))}
    return {"return": ret}


def _kind(value):
    """A callable by its qualified name (Salt gives each environment a new
    bound ``finalizer``), anything else as it is."""
    if callable(value):
        return (getattr(value, "__module__", None), getattr(value, "__qualname__", None))
    return value


def _cache_jinja_compiles():
    """Compile each template text once per process: Salt makes a new Jinja
    environment per render and compiles every SLS and map.jinja again (a
    third of a render). The compiled code depends only on the text and the
    environment's syntax options, which are the key (a finalize function is
    called through the environment at run time: only its kind counts);
    rendering still runs per case with that case's pillar."""
    import jinja2  # pylint: disable=import-outside-toplevel

    compile_ = jinja2.Environment.compile
    cache = {}

    def compile_once(env, source, name=None, filename=None, raw=False, defer_init=False):
        if not isinstance(source, str):
            return compile_(env, source, name, filename, raw, defer_init)
        syntax = (env.block_start_string, env.block_end_string, env.variable_start_string,
                  env.variable_end_string, env.comment_start_string, env.comment_end_string,
                  env.line_statement_prefix, env.line_comment_prefix, env.trim_blocks,
                  env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline,
                  tuple(sorted(env.extensions)), env.optimized, _kind(env.autoescape),
                  _kind(env.finalize), env.is_async)
        key = (syntax, source, name, filename, raw, defer_init)
        if key not in cache:
            cache[key] = compile_(env, source, name, filename, raw, defer_init)
        return cache[key]

    jinja2.Environment.compile = compile_once


def main(config_dir, cases_path, results_path):
    # Nothing reads this process's log, and Salt's trace/debug records cost
    # a sixth of every render when made; errors come back in the results.
    logging.disable(logging.INFO)
    _cache_jinja_compiles()
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    from lab import salt_speedups  # pylint: disable=import-outside-toplevel

    salt_speedups.install()
    import salt.client  # pylint: disable=import-outside-toplevel
    import salt.config  # pylint: disable=import-outside-toplevel

    callers = {}

    def caller(grains):
        key = json.dumps(grains, sort_keys=True)
        if key not in callers:
            opts = salt.config.minion_config(f"{config_dir}/minion")
            if grains:
                opts["grains"] = {**opts.get("grains", {}), **grains}
            callers[key] = salt.client.Caller(mopts=opts)
        return callers[key]

    with open(cases_path, encoding="utf-8") as handle:
        cases = json.load(handle)
    results = []
    for case in cases:
        try:
            kwargs = dict(case.get("kwargs", {}))
            if "pillar" in case:
                kwargs["pillar"] = case["pillar"]
            ret = caller(case.get("grains")).cmd(case.get("fun", "state.show_sls"),
                                                 *case.get("args", ["qmail"]), **kwargs)
            result = _result(ret)
        except Exception:  # noqa: BLE001 - the test reports any traceback as a failure
            result = {"exception": traceback.format_exc()}
        if case.get("watch"):
            result["snapshot"] = snapshot(case["watch"])
        results.append(result)
    with open(results_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
