"""
A fixture for the build orchestration of ``qmail_build``: a tiny C source
tree with a Makefile that has ``setup`` and ``check`` targets and behaves
like qmail's where the formula relies on it. It is NOT qmail.

- ``setup`` compiles ``prog.c`` with the first line of conf-cc (each compile
  is counted in ``compiles.log``), then installs into ``$DESTDIR`` +
  conf-qmail what qmail's hier.c makes that the tests look at: a setuid
  ``bin/qmail-queue``, ``control/``, ``alias/`` (02755), ``queue/`` with
  ``lock/sendmutex``, ``lock/tcpto`` and the ``lock/trigger`` fifo, and
  ``bin/conf.txt`` with every conf-* file it was given;
- ``check`` warns like instcheck when the live ``bin/qmail-queue`` is not
  setuid;
- ``prog.c`` uses errno through ``error.h``: qmail-1.03's declaration
  (``old_errno``) does not link on glibc, as with the real thing;
- ``setup`` fails while the file ``fail_flag`` exists (for the retry test),
  ``check`` warns while ``<fail_flag>-check`` exists.
"""

import hashlib
import io
import pathlib
import tarfile

MAKEFILE = """\
# Orchestration fixture for the qmail formula's tests: NOT qmail.
FAIL_FLAG = {fail_flag}
COMPILES = {compiles}

prog: prog.c conf-cc
\t$$(head -1 conf-cc) -o prog prog.c
\techo compiled >> $(COMPILES)

setup: prog
\ttest ! -e $(FAIL_FLAG) || {{ echo "fixture: setup fails while $(FAIL_FLAG) exists"; exit 1; }}
\th="$(DESTDIR)$$(head -1 conf-qmail)"; \\
\tmkdir -p "$$h/bin" "$$h/control" "$$h/alias" "$$h/queue/lock" "$$h/queue/mess/0" && \\
\tcp prog "$$h/bin/qmail-queue" && chmod 4711 "$$h/bin/qmail-queue" && \\
\tchmod 2755 "$$h/alias" && chmod 750 "$$h/queue" && \\
\t: > "$$h/queue/lock/sendmutex" && chmod 600 "$$h/queue/lock/sendmutex" && \\
\thead -c 1024 /dev/zero > "$$h/queue/lock/tcpto" && \\
\t{{ [ -p "$$h/queue/lock/trigger" ] || mkfifo "$$h/queue/lock/trigger"; }} && \\
\tchmod 622 "$$h/queue/lock/trigger" && \\
\tfor f in conf-*; do echo "$$f: $$(head -1 $$f)"; done > "$$h/bin/conf.txt"

check:
\th="$$(head -1 conf-qmail)"; test -u "$$h/bin/qmail-queue" || \\
\techo "instcheck: warning: .../bin/qmail-queue has wrong permissions"
\ttest ! -e $(FAIL_FLAG)-check || echo "instcheck: warning: .../bin/qmail-queue has wrong owner"
"""

PROG = """\
#include <stdio.h>
#include "error.h"
int main(void) { printf("orchestration fixture, not qmail (%d)\\n", errno); return 0; }
"""
# qmail-1.03's error.h declares errno itself, which does not link on glibc.
ERROR_H_OLD = "extern int errno;\n"
ERROR_H = "#include <errno.h>\n"


def make_tarball(directory, fail_flag, compiles, name="fixture-1.0", old_errno=False):
    """
    Write ``<directory>/<name>.tar.gz``; return (path, "sha256=<hex>"). With
    ``old_errno`` its error.h is qmail-1.03's (``extern int errno``).
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "Makefile": MAKEFILE.format(fail_flag=fail_flag, compiles=compiles),
        "prog.c": PROG,
        "error.h": ERROR_H_OLD if old_errno else ERROR_H,
        "conf-qmail": "/var/qmail\n",
        "conf-cc": "cc -O2\n",
    }
    path = directory / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for fname, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{fname}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path, f"sha256={digest}"
