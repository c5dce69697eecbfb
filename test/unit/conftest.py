"""Loader-level fixtures: the formula's modules loaded by Salt's own loader."""

import pathlib

import pytest
import salt.config
from saltfactories.utils.functional import Loaders

from lab import formula, salt_speedups

# Each state call of a test builds Salt's loaders again, and each lists its
# module folders again: 40% of the unit tests' time, listed once instead.
salt_speedups.install()

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def minion_opts(tmp_path_factory):
    """Masterless minion options whose file_roots are this checkout's
    formula folders (not its root: a file listing would walk .venv and
    .git, see lab/formula.py)."""
    root = tmp_path_factory.mktemp("minion")
    opts = salt.config.minion_config(None)
    opts.update(
        id="hostname.cla.kobe-u.ac.jp",
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        extension_modules=str(root / "extmods"),
        file_client="local",
        file_roots={"base": [str(formula.link_view(root / "formula", REPO))]},
        pillar_roots={"base": [str(root / "pillar")]},
        log_file=str(root / "minion.log"),
    )
    return opts


@pytest.fixture(scope="session")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def _reset_loaders(loaders):
    yield
    loaders.reset_state()


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states


@pytest.fixture
def home(tmp_path):
    """A scratch qmail home."""
    return tmp_path / "qmail"


@pytest.fixture(params=[False, True], ids=["apply", "test-mode"])
def test_mode(request):
    """Run a state case twice: pass ``test=test_mode`` to the state call."""
    return request.param
