"""
Run the benchmarks: ``python -m bench [NAME ...]`` (``make bench``).

Each ``bench/bench_<name>.py`` has a ``main()`` that prints its timings as
ratios against a baseline measured in the same run. Nothing here asserts a
time; the numbers are for reading.
"""

import importlib
import pathlib
import sys


def main(names):
    here = pathlib.Path(__file__).parent
    available = sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    for name in names or available:
        if name not in available:
            sys.exit(f"no benchmark {name!r}; have: {', '.join(available)}")
        print(f"== bench_{name}", flush=True)
        importlib.import_module(f"bench.bench_{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
