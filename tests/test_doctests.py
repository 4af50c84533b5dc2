"""Every Examples section in the public modules runs and shows what it says."""
import doctest
import importlib

import pytest

MODULES = [
    "galasim._validation",
    "galasim.atomic",
    "galasim.gossip.protocol",
    "galasim.topology",
    "galasim.sim.api",
    "galasim.sim.cost",
    "galasim.sim.models",
    "galasim.bench_sim",
    "galasim.sweep.grid",
    "galasim.sweep.store",
    "galasim.sweep.runner",
    "galasim.sweep.plots",
    "proofs_checks.common",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
