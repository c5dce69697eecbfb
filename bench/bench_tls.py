"""
What TLS costs the spool (issue 13): a spool with ``qmail:tls`` (STARTTLS on
25 through tlswrapper, implicit TLS on 465, a self-signed certificate made
by x509_v2) and one client host in its ``relay_clients``. From the client,
BENCH_TLS_MESSAGES messages (default 300), one SMTP session each as
qmail-remote makes them, 4 sessions at a time, with Python's smtplib: plain
SMTP on 25 (tlswrapper-smtp passes it through), STARTTLS on 25, implicit TLS
on 465, in the same run; messages per second until every one is in the
spool's Maildir. Printed as ratios against plain; never asserted.

Env: BENCH_TLS_MESSAGES, BENCH_TLS_ROUNDS (default 2; the best round counts).
"""

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import synced_fleet  # noqa: E402
from lab import source as lab_source  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_TLS_MESSAGES", "300"))
ROUNDS = int(os.environ.get("BENCH_TLS_ROUNDS", "2"))
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"

# Runs on the client: N sessions, 4 at a time, in the given mode.
SENDER = """\
import concurrent.futures, smtplib, socket, ssl, sys
ip, mode, user, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def one(i):
    s = smtplib.SMTP(timeout=60, local_hostname="bench.example")
    if mode == "smtps":
        s.sock = ctx.wrap_socket(socket.create_connection((ip, 465), timeout=60),
                                 server_hostname=sys.argv[5])
        s.getreply()
    else:
        s.connect(ip, 25)
        s._host = sys.argv[5]  # the name starttls sends as SNI (connect leaves it empty)
        if mode == "starttls":
            s.starttls(context=ctx)
    s.sendmail("bench@bench.example", [user + "@" + sys.argv[5]],
               "Subject: bench %s %d\\r\\n\\r\\nx\\r\\n" % (mode, i))
    s.quit()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(one, range(n)))
"""


def run_round(spool, client, mode, user):
    maildir = f"/home/{user}/Maildir"
    spool.add_mail_user(user)
    t0 = time.monotonic()
    client.run(["python3", "-c", SENDER, spool.ip, mode, user, str(MESSAGES), SPOOL],
               check=True, timeout=1800)
    while int(spool.run(f"find {maildir}/new -type f | wc -l").stdout) < MESSAGES:
        if time.monotonic() - t0 > 1800:
            raise SystemExit(f"{mode}: not all {MESSAGES} messages arrived in 30 min")
        time.sleep(0.2)
    return MESSAGES / (time.monotonic() - t0)


def main():
    source = lab_source.locate_or_none()
    if source is None:
        return
    def pillars(hosts, qsource):
        return {
            SPOOL: {"qmail": {"role": "spool", "source": qsource,
                              "relay_clients": [f"{hosts[CLIENT].ip}/32"],
                              "tls": {"enable": True, "smtps": True}}},
            CLIENT: {"qmail": {"role": "client", "spool": SPOOL, "source": qsource}},
        }

    with synced_fleet(source, [SPOOL, CLIENT], pillars, image_name="base") as (
            master, hosts, _):
        spool, client = hosts[SPOOL], hosts[CLIENT]
        master.apply_ok("*", "qmail", timeout=1800)
        best = {}
        for r in range(ROUNDS):
            for mode in ("plain", "starttls", "smtps"):  # interleaved: same conditions
                rate = run_round(spool, client, mode, f"b{mode}{r}")
                best[mode] = max(best.get(mode, 0), rate)
                print(f"  round {r + 1} {mode}: {rate:.1f} msg/s", flush=True)
        print(f"  plain SMTP on 25: {best['plain']:.1f} msg/s [baseline]")
        for mode, what in (("starttls", "STARTTLS on 25"), ("smtps", "implicit TLS on 465")):
            print(f"  {what}: {best[mode]:.1f} msg/s, x{best[mode] / best['plain']:.2f} "
                  "the baseline's rate", flush=True)


if __name__ == "__main__":
    main()
