"""Tests for the scratch Sequential container: chaining, weights by name, seeds, Keras order."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

from scratch.gradient_check import numerical_gradient, relative_error
from scratch.layers.activations import ReLU
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.normalization import BatchNormalization
from scratch.layers.reshaping import Flatten, Reshape
from scratch.sequential import Sequential


def small_model(dtype: str = "float64", seed: int | None = 0, rate: float = 0.0) -> Sequential:
    """Dense -> BN -> ReLU -> Dropout -> Reshape -> Flatten -> Dense, on inputs of size 5."""
    model = Sequential(
        [
            Dense(12, name="hidden", dtype=dtype),
            BatchNormalization(name="bn", dtype=dtype),
            ReLU(name="relu", dtype=dtype),
            Dropout(rate, name="dropout", dtype=dtype),
            Reshape((3, 4), name="reshape", dtype=dtype),
            Flatten(name="flatten", dtype=dtype),
            Dense(2, name="out", dtype=dtype),
        ],
        name="small",
        seed=seed,
    )
    model.build((None, 5))
    return model


def test_forward_chains_layers():
    model = small_model()
    x = np.random.default_rng(1).standard_normal((4, 5))

    y = model.forward(x, training=False)

    h = x
    for layer in model.layers:
        h = layer.forward(h, training=False)
    assert y.shape == (4, 2)
    assert_close("sequential output", y, h)


def test_backward_matches_finite_differences():
    model = small_model()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5))
    grad_output = rng.standard_normal((6, 2))

    model.forward(x, training=True)
    grad_input = model.backward(grad_output)
    analytic = {key: value.copy() for key, value in model.grads.items()}

    def objective() -> float:
        return float(np.sum(model.forward(x, training=True) * grad_output))

    assert relative_error(grad_input, numerical_gradient(objective, x)) < 1e-7
    for key, value in model.params.items():
        numeric = numerical_gradient(objective, value)
        if key == "hidden/bias":
            # Training-mode batch normalization subtracts the batch mean, so a
            # bias just before it has no effect and a zero gradient.
            assert np.max(np.abs(numeric)) < 1e-8
            assert np.max(np.abs(analytic[key])) < 1e-12
            continue
        error = relative_error(analytic[key], numeric)
        assert error < 1e-7, f"{key}: relative error {error:.2e}"


def test_weights_are_keyed_by_layer_and_name():
    model = small_model()

    assert list(model.params) == [
        "hidden/kernel",
        "hidden/bias",
        "bn/gamma",
        "bn/beta",
        "out/kernel",
        "out/bias",
    ]
    assert list(model.state) == ["bn/moving_mean", "bn/moving_variance"]
    assert model.params["hidden/kernel"] is model.get_layer("hidden").params["kernel"]


def test_grads_before_backward_raise():
    model = small_model()

    with pytest.raises(RuntimeError, match="'hidden' has no gradient for 'kernel'"):
        model.grads  # noqa: B018


def test_grads_follow_params_keys():
    model = small_model()
    x = np.random.default_rng(3).standard_normal((4, 5))
    model.backward(np.ones_like(model.forward(x, training=True)))

    assert list(model.grads) == list(model.params)
    for key, grad in model.grads.items():
        assert grad.shape == model.params[key].shape, key


def test_assign_sets_weights_by_key():
    model = small_model()
    new_kernel = np.full((5, 12), 0.5)
    new_mean = np.arange(12.0)

    model.assign({"hidden/kernel": new_kernel, "bn/moving_mean": new_mean})

    assert_close("hidden/kernel", model.params["hidden/kernel"], new_kernel)
    assert_close("bn/moving_mean", model.state["bn/moving_mean"], new_mean)
    with pytest.raises(KeyError, match="no layer named 'missing'"):
        model.assign({"missing/kernel": new_kernel})
    with pytest.raises(KeyError, match="not of the form 'layer/weight'"):
        model.assign({"kernel": new_kernel})
    with pytest.raises(ValueError, match=r"kernel shape \(2, 2\) does not match"):
        model.assign({"hidden/kernel": np.zeros((2, 2))})


def test_get_set_weights_round_trip():
    source = small_model(seed=1)
    target = small_model(seed=2)
    assert not np.array_equal(source.params["hidden/kernel"], target.params["hidden/kernel"])

    target.set_weights(source.get_weights())

    for key, value in source.params.items():
        assert_close(key, target.params[key], value)
    with pytest.raises(ValueError, match="expected 8 weight arrays, received 7"):
        target.set_weights(source.get_weights()[:-1])


def test_get_weights_returns_copies():
    model = small_model()
    weights = model.get_weights()
    weights[0][...] = 7.0

    assert not np.any(model.params["hidden/kernel"] == 7.0)


def test_seed_makes_weights_and_masks_reproducible():
    first = small_model(seed=5, rate=0.5)
    second = small_model(seed=5, rate=0.5)
    other = small_model(seed=6, rate=0.5)
    x = np.random.default_rng(4).standard_normal((8, 5))

    for key, value in first.params.items():
        assert np.array_equal(second.params[key], value), key
    assert not np.array_equal(other.params["hidden/kernel"], first.params["hidden/kernel"])
    assert np.array_equal(first.forward(x, training=True), second.forward(x, training=True))


def test_seed_accepts_generator():
    first = small_model(seed=np.random.default_rng(9))
    second = small_model(seed=np.random.default_rng(9))

    assert np.array_equal(first.params["out/kernel"], second.params["out/kernel"])


def test_rng_state_restores_dropout_masks():
    model = small_model(seed=3, rate=0.5)
    x = np.random.default_rng(4).standard_normal((8, 5))
    saved = model.get_rng_state()

    first = model.forward(x, training=True)
    second = model.forward(x, training=True)
    model.set_rng_state(saved)
    replay = model.forward(x, training=True)

    assert not np.array_equal(first, second)
    assert np.array_equal(first, replay)


def test_duplicate_layer_names_raise():
    with pytest.raises(ValueError, match=r"\['same'\] occur more than once"):
        Sequential([ReLU(name="same"), ReLU(name="same")])


def test_empty_model_raises():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([], name="empty")


def test_wrong_input_shape_raises():
    model = small_model()

    with pytest.raises(ValueError, match=r"input shape \(4, 6\) does not match .*\(None, 5\)"):
        model.forward(np.zeros((4, 6)))


def test_output_shape_and_count_params():
    model = small_model()

    assert model.output_shape == (None, 2)
    expected = 5 * 12 + 12 + 4 * 12 + 12 * 2 + 2
    assert model.count_params() == expected


def test_summary_lists_layers_and_totals():
    model = small_model()

    text = model.summary()

    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in text
    assert "(None, 3, 4)" in text
    assert f"Total params: {model.count_params():,}" in text
    assert "Non-trainable params: 24" in text


def test_summary_before_build_raises():
    model = Sequential([ReLU(name="relu")], name="unbuilt")

    with pytest.raises(RuntimeError, match="'unbuilt' is not built"):
        model.summary()


@pytest.mark.equivalence
def test_weight_order_and_output_match_keras(dtype):
    import keras

    model = small_model(dtype=dtype)
    keras_model = keras.Sequential(
        [
            keras.Input((5,), dtype=dtype),
            keras.layers.Dense(12, name="hidden", dtype=dtype),
            keras.layers.BatchNormalization(name="bn", dtype=dtype),
            keras.layers.ReLU(name="relu", dtype=dtype),
            keras.layers.Dropout(0.0, name="dropout", dtype=dtype),
            keras.layers.Reshape((3, 4), name="reshape", dtype=dtype),
            keras.layers.Flatten(name="flatten", dtype=dtype),
            keras.layers.Dense(2, name="out", dtype=dtype),
        ]
    )
    rng = np.random.default_rng(6)
    # Non-trivial moving statistics, so inference mode tests their order too.
    keras_model.get_layer("bn").moving_mean.assign(rng.standard_normal(12).astype(dtype))
    keras_model.get_layer("bn").moving_variance.assign(rng.uniform(0.5, 2, 12).astype(dtype))
    x = rng.standard_normal((4, 5)).astype(dtype)

    model.set_weights(keras_model.get_weights())

    assert model.count_params() == keras_model.count_params()
    for training in (False, True):
        expected = np.asarray(keras_model(x, training=training))
        assert_close(f"output (training={training})", model.forward(x, training), expected)
    for key, value in model.state.items():
        layer_name, weight = key.split("/")
        expected = np.asarray(getattr(keras_model.get_layer(layer_name), weight))
        assert_close(key, value, expected)
