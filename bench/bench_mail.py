"""
Mail throughput on lab hosts: a spool and two clients from the sendmail
image after ``salt '*' state.apply qmail`` (qmail built from the source
lab.source finds: $QMAIL_SOURCE, else the official tarball).
1,000 messages (500 per client, through /usr/sbin/sendmail) are queued on
the clients while their qmail-send is stopped; then both qmail-sends start
at once and the clock runs until the last message is in the spool's Maildir
and both client queues are empty: the rate at which clients hand mail to
the spool. First with the formula's defaults (the baseline), then with
``concurrencyremote`` raised on the clients by pillar (and the spool's
``smtpd_concurrency`` raised to match, and tcpserver's listen backlog with
it: connections beyond the accept queue hang half-open until qmail-remote's
timeoutremote, 20 minutes). Between the two, same run and
default concurrency, ``qmail:filter`` on the spool (issue 23): DKIM signing of the
clients' mail (goal: at least 0.7x the unfiltered rate), and SpamAssassin
(spamc to the spool's spamd) on the same mail taken as inbound (the clients
out of relay_clients: the spamassassin and spf steps check inbound mail
only). The defaults run once more after the filter rounds; the filter rounds'
ratios are printed against the first baseline and against the mean of
both. Printed as ratios, never asserted.

Env: BENCH_MESSAGES (default 1000), BENCH_CONCURRENCY (default 60; conf-spawn
caps it at 120), BENCH_FILTERS (the filter rounds, comma-separated: dkim,
spf+spamassassin+dkim, spamassassin; default all).
"""

import concurrent.futures
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import synced_fleet  # noqa: E402
from lab import source as lab_source  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "60"))
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENTS = ["hostname.cla.kobe-u.ac.jp", "client2.cla.kobe-u.ac.jp"]


DKIM = {"domains": {SPOOL: {"keys": {"s1": ""}}}}
FILTERS = {
    "dkim": {"steps": ["dkim"], "dkim": DKIM},
    # The whole chain on the same (outbound) mail: spf and spamassassin
    # check inbound mail only, so this is what they cost where they pass.
    "spf+spamassassin+dkim": {"steps": ["spf", "spamassassin", "dkim"], "dkim": DKIM},
    "spamassassin": {"steps": ["spamassassin"]},
}
# BENCH_FILTERS: the filter rounds to run (comma-separated; default all).
SELECTED = [n for n in os.environ.get("BENCH_FILTERS", ",".join(FILTERS)).split(",") if n]


def pillars(hosts, source, raised=False, filter_=None):
    relay = [f"{hosts[c].ip}/32" for c in CLIENTS]
    if filter_ == "spamassassin":
        relay = []  # inbound: what the spamassassin step checks
    spool = {"role": "spool", "source": source, "relay_clients": relay}
    if filter_:
        spool["filter"] = FILTERS[filter_]
    client = {"role": "client", "spool": SPOOL, "source": source}
    if raised:
        client["control"] = {"concurrencyremote": CONCURRENCY}
        spool["service"] = {"smtpd_concurrency": CONCURRENCY * len(CLIENTS) + 10}
    return {SPOOL: {"qmail": spool}, **{c: {"qmail": dict(client)} for c in CLIENTS}}


def apply(master):
    ret = master.salt("*", "state.apply", "qmail", timeout=1800)
    for minion, states in ret.items():
        bad = [k for k, v in states.items() if v["result"] is False] if isinstance(
            states, dict) else [str(states)[:300]]
        if bad:
            raise SystemExit(f"state.apply qmail failed on {minion}: {bad}")


def queued(host):
    out = host.run("/var/qmail/bin/qmail-qstat", check=True).stdout
    return sum(int(line.rsplit(":", 1)[1]) for line in out.splitlines())


def in_parallel(fn, items):
    with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(fn, items))


def run_round(hosts, user):
    """Queue MESSAGES for ``user`` on the clients; seconds for the spool to get them."""
    spool = hosts[SPOOL]
    maildir = f"/home/{user}/Maildir"
    spool.run(f"useradd -m {user} && su {user} -s /bin/sh -c "
              f"'mkdir -p {maildir}/cur {maildir}/new {maildir}/tmp'", check=True)
    per_client = MESSAGES // len(CLIENTS)
    total = per_client * len(CLIENTS)

    def inject(fqdn):
        hosts[fqdn].run("systemctl stop qmail-send", check=True)
        script = (f"i=0; while [ $i -lt {per_client} ]; do i=$((i+1)); "
                  f"printf 'From: {user}@{SPOOL}\\nSubject: bench %s\\n\\nbench\\n' $i | "
                  f"/usr/sbin/sendmail {user} || exit 1; done")
        hosts[fqdn].run(script, check=True, timeout=1800)

    t0 = time.monotonic()
    in_parallel(inject, CLIENTS)
    injection = time.monotonic() - t0
    t0 = time.monotonic()
    in_parallel(lambda fqdn: hosts[fqdn].run("systemctl start qmail-send", check=True),
                CLIENTS)
    while True:
        count = int(spool.run(f"find {maildir}/new -type f | wc -l").stdout)
        if count >= total and all(queued(hosts[c]) == 0 for c in CLIENTS):
            break
        if time.monotonic() - t0 > 1800:
            raise SystemExit(f"only {count} of {total} messages arrived in 30 min")
        time.sleep(0.2)
    return time.monotonic() - t0, injection, total


def main():
    source = lab_source.locate_or_none()
    if source is None:
        return
    with synced_fleet(source, [SPOOL, *CLIENTS], pillars) as (master, hosts, qsource):
        apply(master)
        base, injection, total = run_round(hosts, "bench1")
        print(f"  defaults (concurrencyremote 20, smtpd_concurrency 40): {total} messages "
              f"in {base:.1f} s = {total / base:.0f} msg/s [baseline] "
              f"(queued beforehand in {injection:.1f} s)", flush=True)
        filtered = {}
        for i, name in enumerate(SELECTED, 2):
            master.set_pillar(pillars(hosts, qsource, filter_=name))
            apply(master)
            took, injection, total = run_round(hosts, f"bench{i}")
            filtered[name] = took
            print(f"  qmail:filter {name}: {total} messages in {took:.1f} s = "
                  f"{total / took:.0f} msg/s, x{base / took:.2f} the unfiltered rate",
                  flush=True)
        if filtered:
            # The baseline again, after the filter rounds: a drift of the
            # machine (or a cold first round) shows as two baselines apart;
            # the ratios against their mean bracket it.
            master.set_pillar(pillars(hosts, qsource))
            apply(master)
            again, injection, total = run_round(hosts, "bench8")
            mean = (base + again) / 2
            print(f"  defaults again: {total} messages in {again:.1f} s = "
                  f"{total / again:.0f} msg/s; against both baselines' mean "
                  f"({total / mean:.0f} msg/s): " + ", ".join(
                      f"{name} x{mean / took:.2f}" for name, took in filtered.items()),
                  flush=True)
        master.set_pillar(pillars(hosts, qsource, raised=True))
        apply(master)
        raised, injection, total = run_round(hosts, "bench9")
        print(f"  concurrencyremote {CONCURRENCY} per client, smtpd_concurrency "
              f"{CONCURRENCY * len(CLIENTS) + 10}: {total} messages in {raised:.1f} s = "
              f"{total / raised:.0f} msg/s, x{base / raised:.2f} the baseline's rate",
              flush=True)


if __name__ == "__main__":
    main()
