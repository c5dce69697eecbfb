"""
What TLS costs the spool (issue 13): a spool with ``qmail:tls`` (STARTTLS on
25 through tlswrapper, implicit TLS on 465, a self-signed certificate made
by x509_v2) and one client host in its ``relay_clients``. From the client,
BENCH_TLS_MESSAGES messages (default 300), one SMTP session each as
qmail-remote makes them, 4 sessions at a time, with Python's smtplib: plain
SMTP on 25 (tlswrapper-smtp passes it through), STARTTLS on 25, implicit TLS
on 465, in the same run; messages per second until every one is in the
spool's Maildir. Printed as ratios against plain; never asserted.

What SMTP AUTH costs on 465 (issue 22, when the SMTP AUTH patch is at hand:
``lab.source.smtp_auth_patch``): two more spools with the patched build,
``nosub`` (465 as above) and ``sub`` (``qmail:submission``: every session
logs in with AUTH PLAIN first, as a yescrypt user or a sha512-crypt user);
the same client, the same rounds; printed as ratios against ``nosub``'s 465.

Env: BENCH_TLS_MESSAGES, BENCH_TLS_ROUNDS (default 2; the best round counts).
"""

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import synced_fleet  # noqa: E402
from lab import source as lab_source  # noqa: E402
from lab.buildcache import source_pillar  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_TLS_MESSAGES", "300"))
ROUNDS = int(os.environ.get("BENCH_TLS_ROUNDS", "2"))
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
NOSUB = "nosub.cla.kobe-u.ac.jp"  # patched, 465 without AUTH
SUB = "sub.cla.kobe-u.ac.jp"      # patched, 465 with AUTH required
# Bench users' passwords and their hashes (the hashes made once, here,
# with crypt(3) as mkpasswd does; Python 3.11's crypt module).
AUTH_USERS = {"yescrypt": ("byes", "bench-yes-pw"), "sha512": ("bsha", "bench-sha-pw")}

# Runs on the client: N sessions, 4 at a time, in the given mode.
SENDER = """\
import base64, concurrent.futures, smtplib, socket, ssl, sys
ip, mode, user, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
# argv[5]: the spool's name; argv[6], argv[7]: a user and password to log in with
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
    if len(sys.argv) > 6:  # AUTH PLAIN first (qmail:submission), as a mail client does
        s.ehlo()
        cred = base64.b64encode(("\\0" + sys.argv[6] + "\\0" + sys.argv[7]).encode())
        code = s.docmd("AUTH", "PLAIN " + cred.decode())[0]
        if code != 235:
            raise SystemExit("AUTH PLAIN: %d" % code)
    s.sendmail("bench@bench.example", [user + "@" + sys.argv[5]],
               "Subject: bench %s %d\\r\\n\\r\\nx\\r\\n" % (mode, i))
    s.quit()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(one, range(n)))
"""


def run_round(spool, client, mode, user, login=()):
    maildir = f"/home/{user}/Maildir"
    spool.add_mail_user(user)
    t0 = time.monotonic()
    client.run(["python3", "-c", SENDER, spool.ip, mode, user, str(MESSAGES), spool.fqdn,
                *login], check=True, timeout=1800)
    while int(spool.run(f"find {maildir}/new -type f | wc -l").stdout) < MESSAGES:
        if time.monotonic() - t0 > 1800:
            raise SystemExit(f"{mode}: not all {MESSAGES} messages arrived in 30 min")
        time.sleep(0.2)
    return MESSAGES / (time.monotonic() - t0)


def _hashes():
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 - Python 3.11 on this machine

    salt = crypt.mksalt(crypt.METHOD_SHA512)
    return {AUTH_USERS["yescrypt"][0]: crypt.crypt(AUTH_USERS["yescrypt"][1],
                                                   "$y$j9T$" + salt[3:] + "$"),
            AUTH_USERS["sha512"][0]: crypt.crypt(AUTH_USERS["sha512"][1], salt)}


def _auth_patch():
    try:
        return lab_source.smtp_auth_patch()
    except lab_source.SourceUnavailable as exc:
        print(f"  (no SMTP AUTH patch: {exc}; 465 with AUTH not measured)", flush=True)
        return None


def pillars(master, hosts, source, patch):
    """The spools' and the client's pillars; the trees compiled once
    (lab.buildcache), the patched one for NOSUB and SUB."""
    tls = {"enable": True, "smtps": True}
    plain = {"source": master.put_source(source), "build": master.prebuilt(source)}
    out = {
        SPOOL: {"qmail": {"role": "spool", "relay_clients": [f"{hosts[CLIENT].ip}/32"],
                          "tls": tls, **plain}},
        CLIENT: {"qmail": {"role": "client", "spool": SPOOL, **plain}},
    }
    if patch:
        patched = {"source": source_pillar(master, source, [patch]),
                   "build": master.prebuilt(source, patches=[patch])}
        out[NOSUB] = {"qmail": {"role": "spool", "tls": tls, **patched}}
        out[SUB] = {"qmail": {"role": "spool", "tls": tls, **patched,
                              "submission": {"enable": True, "users": _hashes()}}}
    return out


def main():
    source = lab_source.locate_or_none()
    if source is None:
        return
    patch = _auth_patch()
    fqdns = [SPOOL, CLIENT] + ([NOSUB, SUB] if patch else [])
    with synced_fleet(source, fqdns, lambda hosts, qsource: {}, image_name="base") as (
            master, hosts, _):
        master.set_pillar(pillars(master, hosts, source, patch))
        spool, client = hosts[SPOOL], hosts[CLIENT]
        master.apply_ok("*", "qmail", timeout=3600)
        best = {}
        # (name, host, wire, login): interleaved per round, same conditions.
        modes = [("plain", spool, "plain", ()), ("starttls", spool, "starttls", ()),
                 ("smtps", spool, "smtps", ())]
        if patch:
            modes += [("nosub", hosts[NOSUB], "smtps", ())] + [
                (f"auth-{kind}", hosts[SUB], "smtps", AUTH_USERS[kind]) for kind in AUTH_USERS]
        for r in range(ROUNDS):
            for mode, host, wire, login in modes:
                rate = run_round(host, client, wire, f"b{mode.replace('-', '')}{r}", login)
                best[mode] = max(best.get(mode, 0), rate)
                print(f"  round {r + 1} {mode}: {rate:.1f} msg/s", flush=True)
        print(f"  plain SMTP on 25: {best['plain']:.1f} msg/s [baseline]")
        for mode, what in (("starttls", "STARTTLS on 25"), ("smtps", "implicit TLS on 465")):
            print(f"  {what}: {best[mode]:.1f} msg/s, x{best[mode] / best['plain']:.2f} "
                  "the baseline's rate", flush=True)
        if patch:
            print(f"  patched, 465 without AUTH: {best['nosub']:.1f} msg/s [AUTH baseline]")
            for kind in AUTH_USERS:
                rate = best[f"auth-{kind}"]
                print(f"  465 with AUTH PLAIN ({kind} user): {rate:.1f} msg/s, "
                      f"x{rate / best['nosub']:.2f} the AUTH baseline's rate", flush=True)


if __name__ == "__main__":
    main()
