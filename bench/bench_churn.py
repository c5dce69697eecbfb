"""
Throughput under HUP/restart churn: a spool and two clients from the
sendmail image after ``salt '*' state.apply qmail`` (real qmail, source from
lab.source). 1,000 messages (500 per client, through /usr/sbin/sendmail,
qmail-send running) are sent while the clock runs until every one is in the
spool's Maildir and the queues are empty: messages per second from two
clients to the spool. Once calm (the baseline), once while, through the
master, the spool's qmail-send is HUPed and the clients' and the spool's
qmail-send are restarted (``qmail_service.hup``/``restart``) in a loop.
Printed as a ratio, never asserted; lost or duplicated messages (counted by
Message-ID) are printed too.

Env: BENCH_MESSAGES (default 1000).
"""

import concurrent.futures
import os
import pathlib
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import synced_fleet  # noqa: E402
from lab import source as lab_source  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENTS = ["hostname.cla.kobe-u.ac.jp", "client2.cla.kobe-u.ac.jp"]


def pillars(hosts, source):
    relay = [f"{hosts[c].ip}/32" for c in CLIENTS]
    spool = {"role": "spool", "source": source, "relay_clients": relay}
    client = {"role": "client", "spool": SPOOL, "source": source}
    return {SPOOL: {"qmail": spool}, **{c: {"qmail": dict(client)} for c in CLIENTS}}


def churn(master, stop, counts):
    """HUP the spool, restart a client, restart the spool, again and again."""
    steps = [(SPOOL, "qmail_service.hup"), (CLIENTS[0], "qmail_service.restart"),
             (CLIENTS[1], "qmail_service.restart"), (SPOOL, "qmail_service.restart")]
    n = 0
    while not stop.is_set():
        target, fun = steps[n % len(steps)]
        master.salt(target, fun)
        counts[fun] = counts.get(fun, 0) + 1
        n += 1
        time.sleep(1)


def run_round(master, hosts, user, with_churn):
    spool = hosts[SPOOL]
    maildir = f"/home/{user}/Maildir"
    spool.add_mail_user(user)
    per_client = MESSAGES // len(CLIENTS)
    total = per_client * len(CLIENTS)

    def send(fqdn):
        script = (f"i=0; while [ $i -lt {per_client} ]; do i=$((i+1)); "
                  f"printf 'Message-ID: <%s.{user}@{fqdn}>\\nSubject: bench\\n\\nx\\n' $i | "
                  f"/usr/sbin/sendmail {user}@{SPOOL} || exit 1; done")
        hosts[fqdn].run(script, check=True, timeout=1800)

    stop, counts = threading.Event(), {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        churner = pool.submit(churn, master, stop, counts) if with_churn else None
        list(pool.map(send, CLIENTS))
        while True:
            count = int(spool.run(f"find {maildir}/new -type f | wc -l").stdout)
            if count >= total and all(
                    master.salt(f, "qmail_service.queue_status")[f]["messages"] == 0
                    for f in [*CLIENTS, SPOOL]):
                break
            if time.monotonic() - t0 > 1800:
                raise SystemExit(f"only {count} of {total} messages arrived in 30 min")
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        stop.set()
        if churner:
            churner.result()
    ids = spool.run(f"grep -h -r -i '^Message-ID: <' {maildir}/new").stdout.split("\n")[:-1]
    return elapsed, total, len(ids), len(set(ids)), counts


def main():
    source = lab_source.locate_or_none()
    if source is None:
        return
    with synced_fleet(source, [SPOOL, *CLIENTS], pillars) as (master, hosts, _):
        master.apply_ok("*", "qmail", timeout=1800)
        calm, total, got, distinct, _ = run_round(master, hosts, "calm", False)
        print(f"  calm: {total} messages in {calm:.1f} s = {total / calm:.0f} msg/s "
              f"[baseline] ({got} delivered, {distinct} distinct)", flush=True)
        busy, total, got, distinct, counts = run_round(master, hosts, "churn", True)
        print(f"  with churn ({counts}): {total} messages in {busy:.1f} s = "
              f"{total / busy:.0f} msg/s, x{calm / busy:.2f} the baseline's rate "
              f"({got} delivered, {distinct} distinct)", flush=True)


if __name__ == "__main__":
    main()
