"""Command line: ``python -m lab images|demo|clean``.

images [--release R ...]
                 build (or reuse) the base and sendmail images of Debian
                 releases R (11, 12, 13; default: all three)
demo [--release R] [--keep]
                 run the formula on a spool and two clients of Debian R
                 (default 13, the current stable); see lab/demo.py
clean [--all]    remove every lab container and network (of every session
                 using this lab dir) and restore the machine (ip_forward, nft
                 tables, /run dirs); --all also removes the lab dir: images,
                 build trees, wheelhouse, podman storage
"""

from __future__ import annotations

import argparse
import sys

from . import config, image, lab, podman


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command."""
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    images = sub.add_parser("images", help="build the lab images (cached)")
    images.add_argument("--release", action="append", choices=sorted(config.RELEASES),
                        help="a Debian release to build (repeatable; default: all)")
    demo = sub.add_parser("demo", help="run the demo")
    demo.add_argument("--keep", action="store_true", help="wait for Enter before teardown")
    demo.add_argument("--release", default=config.STABLE_RELEASE,
                      choices=sorted(config.RELEASES),
                      help=f"Debian release of the hosts (default {config.STABLE_RELEASE})")
    clean = sub.add_parser("clean", help="remove lab containers and networks")
    clean.add_argument("--all", action="store_true", help="also remove images and caches")
    args = parser.parse_args(argv)
    reason = podman.available()
    if reason:
        print(f"the lab cannot run here: {reason}", file=sys.stderr)
        return 2
    if args.command == "images":
        engine = podman.Podman()
        releases = args.release or sorted(config.RELEASES)
        for variant, ref in image.build_all(engine, releases).items():
            print(f"{variant}: {ref}")
        lab.restore_machine_if_idle(engine)
        return 0
    if args.command == "demo":
        from . import demo as demo_mod
        return demo_mod.run(keep=args.keep, release=args.release)
    for line in lab.clean(all_=args.all):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
