"""
What a sysadmin compares before and after: every path under /etc, /usr
and /var of a lab host with its mode, owner and content hash (or link
target), leaving out what changes by itself.

Content hashes are remembered in this process by the file's identity
(path, inode, size, mtime and ctime to the nanosecond) and handed to the
host with each listing: only files new or written since are read and
hashed again. A write changes a file's ctime whatever else it keeps (only
the kernel sets ctime), so a remembered hash is never taken for a changed
file. Before, each listing read and hashed the ~470 MB of /usr and the rest
anew, twice per test (before and after).
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

# stdin: {path: [identity, sha256]} known hashes. stdout: {"listing": {path:
# [mode, uid, gid, sha256 or link target]}, "hashed": {path: [identity, sha256]}}
# for the files it had to read.
_LISTING = r"""
import hashlib, json, os, stat, sys
exclude = tuple(sys.argv[1:])
known = json.load(sys.stdin)
out, hashed = {}, {}
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
                ident = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
                seen = known.get(path)
                if seen and seen[0] == ident:
                    extra = seen[1]
                else:
                    h = hashlib.sha256()
                    with open(path, 'rb') as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b''):
                            h.update(chunk)
                    extra = h.hexdigest()
                    hashed[path] = [ident, extra]
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            out[path] = [oct(st.st_mode), st.st_uid, st.st_gid, extra]
json.dump({'listing': out, 'hashed': hashed}, sys.stdout)
"""

#: path -> [identity, sha256] of every file hashed so far, any host: a file
#: of a lab image keeps its identity in every container made from it.
_HASHES: dict[str, list] = {}


def disk_listing(host, exclude=()) -> dict:
    """{path: [mode, uid, gid, sha256 or link target]} of /etc, /usr and /var,
    without EXCLUDE and ``exclude``."""
    proc = host.run(["python3", "-c", _LISTING, *EXCLUDE, *exclude], check=True,
                    input=json.dumps(_HASHES), timeout=300)
    result = json.loads(proc.stdout)
    _HASHES.update(result["hashed"])
    return result["listing"]
