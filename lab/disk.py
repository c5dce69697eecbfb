"""
What a sysadmin compares before and after: every path under /etc, /usr
and /var of a lab host with its mode, owner and content hash (or link
target), leaving out what changes by itself.
"""

from __future__ import annotations

import json

# Volatile paths left out of the before/after listing, and why:
EXCLUDE = [
    "/var/log",             # journald, salt-minion and sendmail logs grow by themselves
    "/var/cache/salt",      # the minion's own cache: file client, proc, state run data
    "/var/lib/systemd",     # systemd's timers, random seed, credentials
    "/etc/salt/pki",        # minion keys, written by the minion, not by states
    "/var/lib/sendmail",    # sendmail's own runtime status/statistics files
    "/var/spool/mqueue-client",  # sendmail's queue runner touches it
]

_LISTING = r"""
import hashlib, json, os, stat, sys
exclude = tuple(sys.argv[1:])
out = {}
for top in ('/etc', '/usr', '/var'):
    for root, dirs, files in os.walk(top):
        if root.startswith(exclude):
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(root, name)
            if path.startswith(exclude):
                continue
            st = os.lstat(path)
            extra = ''
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, 'rb') as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b''):
                        h.update(chunk)
                extra = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            out[path] = [oct(st.st_mode), st.st_uid, st.st_gid, extra]
json.dump(out, sys.stdout)
"""


def disk_listing(host, exclude=()) -> dict:
    """{path: [mode, uid, gid, sha256 or link target]} of /etc, /usr and /var,
    without EXCLUDE and ``exclude``."""
    proc = host.run(["python3", "-c", _LISTING, *EXCLUDE, *exclude], check=True, timeout=300)
    return json.loads(proc.stdout)
