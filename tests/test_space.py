import numpy as np
import pytest

from quantmoo import QuantConfig, QuantmooError, SearchSpace
from quantmoo.config import LayerQuant


def test_default_space_values():
    sp = SearchSpace()
    assert sp.weight_bits == (2, 3, 4, 6, 8, 16)
    assert sp.activation_bits == (4, 8, 16)


@pytest.mark.parametrize("kwargs, field, bad", [
    ({"weight_bits": (2, 5, 7)}, "weight_bits", "7"),
    ({"activation_bits": (1, 8)}, "activation_bits", "1"),
    ({"weight_schemes": ("nonsense",)}, "weight_schemes", "nonsense"),
    ({"granularities": ()}, "granularities", ""),
    ({"calibrations": ("kl",)}, "calibrations", "kl"),
])
def test_invalid_space_names_field_and_allowed(kwargs, field, bad):
    with pytest.raises(QuantmooError) as e:
        SearchSpace(**kwargs)
    msg = str(e.value)
    assert field in msg and bad in msg and "{" in msg


def test_affine_alias():
    assert SearchSpace(weight_schemes=("affine", "symmetric")).weight_schemes == ("asymmetric", "symmetric")


def test_layout_and_bounds(tiny_model):
    sp = SearchSpace()
    enc = sp.bind(tiny_model)
    # 5 varying attributes per layer + the calibration gene
    assert enc.k == 5 and enc.n_var == 4 * 5 + 1
    assert enc.n_choices == 6 * 3 * 3 * 2 * 3
    assert list(enc.xu[:5]) == [5, 2, 2, 1, 2] and enc.xu[-1] == 3


def test_encode_decode_roundtrip_random(tiny_model, rng):
    sp = SearchSpace()
    enc = sp.bind(tiny_model)
    X = rng.integers(enc.xl, enc.xu + 1, size=(50, enc.n_var))
    for x in X:
        cfg = enc.decode(x)
        assert np.array_equal(enc.encode(cfg), x)
        # and through YAML
        assert np.array_equal(enc.encode(QuantConfig.load(cfg.to_yaml())), x)


def test_choices_match_decoded_attributes(tiny_model, rng):
    enc = SearchSpace().bind(tiny_model)
    X = rng.integers(enc.xl, enc.xu + 1, size=(20, enc.n_var))
    C = enc.choices(X)
    for x, c in zip(X, C):
        cfg = enc.decode(x)
        for l, name in enumerate(tiny_model.layer_names):
            assert enc.choice_value["weight_bits"][c[l]] == cfg.layers[name].weight_bits
            assert enc.choice_value["granularity"][c[l]] == cfg.layers[name].granularity
    assert np.array_equal(enc.genes_from_choices(C, enc.calibration_index(X)), X)


def test_pinned_layers_fix_bounds(tiny_model):
    sp = SearchSpace(pinned={"fc0": {"weight_bits": 8}, "fc3": {"weight_bits": 8, "activation_bits": 16}})
    enc = sp.bind(tiny_model)
    assert enc.xl[0] == enc.xu[0] == sp.weight_bits.index(8)
    assert enc.xl[15] == enc.xu[15] == sp.weight_bits.index(8)
    assert enc.xl[16] == enc.xu[16] == sp.activation_bits.index(16)


def test_pin_value_outside_space_is_an_error(tiny_model):
    with pytest.raises(QuantmooError, match="pinned 'weight_bits'.*got 5"):
        SearchSpace(pinned={"fc0": {"weight_bits": 5}})


def test_fixed_attribute_has_no_gene(tiny_model):
    sp = SearchSpace(weight_schemes=("symmetric",), activation_schemes=("asymmetric",),
                     granularities=("per_channel",), calibrations=("mse",))
    enc = sp.bind(tiny_model)
    assert enc.varying == ("weight_bits", "activation_bits") and enc.n_var == 8
    cfg = enc.decode(np.zeros(8, dtype=int))
    assert cfg.calibration == "mse" and cfg.layers["fc1"].granularity == "per_channel"


def test_encode_rejects_value_outside_space(tiny_model):
    sp = SearchSpace(weight_bits=(4, 8))
    cfg = QuantConfig.uniform(tiny_model, weight_bits=2)
    with pytest.raises(QuantmooError, match="weight_bits"):
        sp.encode(cfg, tiny_model)


def test_config_layer_mismatch_is_error(tiny_model):
    cfg = QuantConfig({"fc0": LayerQuant(), "nope": LayerQuant()})
    with pytest.raises(QuantmooError, match="do not match"):
        cfg.check_model(tiny_model)


def test_space_from_dict_unknown_field():
    with pytest.raises(QuantmooError, match="unknown field"):
        SearchSpace.from_dict({"weight_bitz": [4]})
