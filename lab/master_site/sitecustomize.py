"""Imported by Python at the start of each lab salt-master (``LabMaster``
puts this folder first on the master's ``PYTHONPATH``): lab/salt_speedups.py's
``install()``, so that the master's loaders list Salt's module folders once
and its opts mappings answer ``bool()`` without counting their keys. The
master compiles a pillar for every state run and builds a dozen loaders to
do it; listing their folders again each time was a third of its request
workers' CPU.
The system's own sitecustomize, which this one hides, runs after it."""

import importlib.machinery
import importlib.util
import pathlib
import sys


def _run(spec):
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_HERE = pathlib.Path(__file__).resolve().parent
# By its path: lab/ on sys.path would put the lab's modules (config, host,
# source...) in the way of the master's imports.
_run(importlib.util.spec_from_file_location(
    "qmail_lab_salt_speedups", _HERE.parent / "salt_speedups.py")).install()

_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE])
if _spec is not None:
    _run(_spec)
