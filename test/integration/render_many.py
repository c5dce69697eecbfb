"""
Render the whole ``qmail`` formula (``state.show_sls qmail``) for many
pillars in one Salt process: a masterless minion's ``Caller``, the pillar
of each case passed as the pillar override. Used by the corpus test, so
that 200+ pillars cost seconds, not 200 ``salt-call`` starts.

    python render_many.py MINION_CONFIG_DIR CASES.json RESULTS.json

CASES.json: a list of ``{"qmail": {...}}`` pillars. RESULTS.json: per
case ``{"errors": [...]}`` (render errors as Salt returns them),
``{"states": N}`` (it rendered), or ``{"exception": "<traceback>"}``.
"""

import json
import sys
import traceback


def main(config_dir, cases_path, results_path):
    import salt.client  # pylint: disable=import-outside-toplevel
    import salt.config  # pylint: disable=import-outside-toplevel

    opts = salt.config.minion_config(f"{config_dir}/minion")
    caller = salt.client.Caller(mopts=opts)
    with open(cases_path, encoding="utf-8") as handle:
        cases = json.load(handle)
    results = []
    for pillar in cases:
        try:
            ret = caller.cmd("state.show_sls", "qmail", pillar=pillar)
        except Exception:  # noqa: BLE001 - the test reports any traceback as a failure
            results.append({"exception": traceback.format_exc()})
            continue
        if isinstance(ret, list):
            results.append({"errors": [str(e) for e in ret]})
        else:
            results.append({"states": len(ret)})
    with open(results_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
