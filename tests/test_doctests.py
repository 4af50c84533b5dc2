"""Every Examples section in galasim's modules (and proofs_checks' shared helpers) runs and shows
what it says. The modules are found by walking the package, so a new module cannot be left out."""
import doctest
import importlib
import pkgutil

import pytest

import galasim

MODULES = sorted(m.name for m in pkgutil.walk_packages(galasim.__path__, "galasim.")
                 if not m.name.endswith("__main__")) + ["proofs_checks.common"]


def test_the_walk_finds_the_modules_with_examples():
    assert {"galasim.mixing", "galasim.rl.monitor", "galasim.gossip.buffer", "galasim.sim.api"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
