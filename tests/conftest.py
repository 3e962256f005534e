import os

import numpy as np
import pytest

from quantmoo.models.spec import LayerSpec, ModelSpec


@pytest.fixture
def tiny_model():
    """Four linear layers, two blocks, one tie group: small enough to reason about by hand."""
    layers = [
        LayerSpec("fc0", "linear", (64, 32), macs=64 * 32, act_in=32, act_out=64, extra_params=64),
        LayerSpec("fc1", "linear", (64, 64), macs=64 * 64, act_in=64, act_out=64, block=0, tie_group="res"),
        LayerSpec("fc2", "linear", (64, 64), macs=64 * 64, act_in=64, act_out=64, block=1, tie_group="res"),
        LayerSpec("fc3", "linear", (10, 64), macs=10 * 64, act_in=64, act_out=10, extra_params=10),
    ]
    return ModelSpec("tiny", layers, workload={"batch": 1}, other_params=128)


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
