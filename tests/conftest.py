import os

import numpy as np
import pytest


@pytest.fixture
def tiny_model():
    """Four linear layers, two blocks, one tie group: small enough to reason about by hand.

    One definition, shared with the loader fuzzing (``benchmarks/_fuzz.py``)."""
    from benchmarks._fuzz import tiny_model as build
    return build()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    """Skip the heavy ``@pytest.mark.fuzz`` tests unless asked for (``-m fuzz`` or QUANTMOO_FUZZ=1)."""
    markexpr = config.getoption("markexpr", default="") or ""
    if os.environ.get("QUANTMOO_FUZZ") == "1" or ("fuzz" in markexpr and "not fuzz" not in markexpr):
        return
    skip = pytest.mark.skip(reason="heavy fuzzing: run with -m fuzz or QUANTMOO_FUZZ=1")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)
