"""Single-layer weight copies between Keras and scratch, and their guards."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from helpers import assert_close

from keras_impl.weights import copy_keras_to_scratch, copy_scratch_to_keras
from scratch.layers.activations import LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from scratch.layers.base import Layer
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.reshaping import Flatten, Reshape


class BatchNormalization(Layer):
    """Weights-only stand-in with Keras batch norm's names, order and shapes.

    It tests the copy of non-trainable weights without depending on the real
    scratch batch norm. ``moving_variance_shape`` lets a test break one shape.
    """

    def __init__(self, moving_variance_shape: tuple[int, ...] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.moving_variance_shape = moving_variance_shape

    def build(self, input_shape: tuple[int, ...]) -> None:
        dtype = self.dtype or np.dtype("float32")
        channels = input_shape[-1]
        self.params["gamma"] = np.ones(channels, dtype)
        self.params["beta"] = np.zeros(channels, dtype)
        self.state["moving_mean"] = np.zeros(channels, dtype)
        self.state["moving_variance"] = np.ones(self.moving_variance_shape or channels, dtype)
        super().build(input_shape)


def _random_weights(layer: keras.layers.Layer, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()]


def _built_dense_pair(dtype: str = "float32", input_dim: int = 4, units: int = 3, **kwargs):
    keras_layer = keras.layers.Dense(units, dtype=dtype, name="k_dense", **kwargs)
    keras_layer.build((2, input_dim))
    scratch_layer = Dense(units, dtype=dtype, name="s_dense", **kwargs)
    scratch_layer.build((2, input_dim))
    return keras_layer, scratch_layer


# ---------------------------------------------------------------------- #
# Copies
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("use_bias", [True, False])
def test_copy_keras_to_scratch_dense(use_bias: bool, dtype: str) -> None:
    keras_layer, scratch_layer = _built_dense_pair(dtype, use_bias=use_bias)
    keras_layer.set_weights(_random_weights(keras_layer, seed=0))

    copy_keras_to_scratch(keras_layer, scratch_layer)

    expected = keras_layer.get_weights()
    actual = scratch_layer.get_weights()
    assert len(actual) == len(expected) == (2 if use_bias else 1)
    for ours, theirs in zip(actual, expected, strict=True):
        assert np.array_equal(ours, theirs)
        assert ours.dtype == theirs.dtype


@pytest.mark.parametrize("use_bias", [True, False])
def test_copy_scratch_to_keras_dense(use_bias: bool, dtype: str) -> None:
    keras_layer, scratch_layer = _built_dense_pair(dtype, use_bias=use_bias)
    scratch_layer.set_weights(_random_weights(keras_layer, seed=1))
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(dtype)

    copy_scratch_to_keras(scratch_layer, keras_layer)

    for ours, theirs in zip(scratch_layer.get_weights(), keras_layer.get_weights(), strict=True):
        assert np.array_equal(ours, theirs)
    assert_close("output", scratch_layer.forward(x), np.asarray(keras_layer(x)))


def test_copy_is_a_copy_not_a_view() -> None:
    keras_layer, scratch_layer = _built_dense_pair()
    copy_keras_to_scratch(keras_layer, scratch_layer)
    before = keras_layer.get_weights()[0].copy()

    scratch_layer.params["kernel"] += 1.0

    assert np.array_equal(keras_layer.get_weights()[0], before)


def test_copy_includes_non_trainable_weights(dtype: str) -> None:
    keras_layer = keras.layers.BatchNormalization(dtype=dtype)
    keras_layer.build((2, 5))
    keras_layer.set_weights(_random_weights(keras_layer, seed=3))
    scratch_layer = BatchNormalization(dtype=dtype)
    scratch_layer.build((2, 5))

    copy_keras_to_scratch(keras_layer, scratch_layer)

    assert scratch_layer.weight_order() == ["gamma", "beta", "moving_mean", "moving_variance"]
    for ours, theirs in zip(scratch_layer.get_weights(), keras_layer.get_weights(), strict=True):
        assert np.array_equal(ours, theirs)

    scratch_layer.state["moving_variance"] = np.full(5, 2.5, dtype)
    copy_scratch_to_keras(scratch_layer, keras_layer)

    assert np.array_equal(keras_layer.moving_variance.numpy(), np.full(5, 2.5, dtype))


WEIGHTLESS_TWINS = [
    (lambda: keras.layers.ReLU(max_value=6.0), lambda: ReLU(max_value=6.0)),
    (lambda: keras.layers.LeakyReLU(0.2), lambda: LeakyReLU(0.2)),
    (lambda: keras.layers.Activation("tanh"), Tanh),
    (lambda: keras.layers.Activation("sigmoid"), Sigmoid),
    (lambda: keras.layers.Activation("relu"), ReLU),
    (lambda: keras.layers.Activation("leaky_relu"), lambda: LeakyReLU(0.2)),
    (lambda: keras.layers.Activation("linear"), Linear),
    (lambda: keras.layers.Dropout(0.3), lambda: Dropout(0.3)),
    (lambda: keras.layers.Reshape((2, 2)), lambda: Reshape((2, 2))),
    (lambda: keras.layers.Flatten(), Flatten),
]


@pytest.mark.parametrize(("keras_factory", "scratch_factory"), WEIGHTLESS_TWINS)
def test_copy_weightless_twins(keras_factory, scratch_factory) -> None:
    keras_layer, scratch_layer = keras_factory(), scratch_factory()

    copy_keras_to_scratch(keras_layer, scratch_layer)
    copy_scratch_to_keras(scratch_layer, keras_layer)

    assert scratch_layer.get_weights() == []
    assert keras_layer.get_weights() == []


# ---------------------------------------------------------------------- #
# Mismatches
# ---------------------------------------------------------------------- #
def test_shape_mismatch_names_both_layers() -> None:
    keras_layer = keras.layers.Dense(3, name="k_dense")
    keras_layer.build((2, 4))
    scratch_layer = Dense(3, name="s_dense")
    scratch_layer.build((2, 5))
    message = (
        "Dense 'k_dense' (Keras) kernel shape (4, 3) does not match "
        "Dense 's_dense' (scratch) kernel shape (5, 3)."
    )

    with pytest.raises(ValueError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, scratch_layer)
    with pytest.raises(ValueError, match=re.escape(message)):
        copy_scratch_to_keras(scratch_layer, keras_layer)


def test_dtype_mismatch_names_both_layers() -> None:
    keras_layer, _ = _built_dense_pair("float32")
    _, scratch_layer = _built_dense_pair("float64")
    message = (
        "Dense 'k_dense' (Keras) kernel dtype float32 does not match "
        "Dense 's_dense' (scratch) kernel dtype float64"
    )

    with pytest.raises(TypeError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, scratch_layer)
    with pytest.raises(TypeError, match=re.escape(message)):
        copy_scratch_to_keras(scratch_layer, keras_layer)


def test_weight_names_mismatch() -> None:
    keras_layer, _ = _built_dense_pair(use_bias=True)
    _, scratch_layer = _built_dense_pair(use_bias=False)
    message = (
        "Dense 'k_dense' (Keras) weights ['kernel', 'bias'] do not match "
        "Dense 's_dense' (scratch) weights ['kernel']."
    )

    with pytest.raises(ValueError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, scratch_layer)


def test_unbuilt_layers_are_named() -> None:
    keras_layer, _ = _built_dense_pair()
    unbuilt_scratch = Dense(3, name="s_unbuilt")
    with pytest.raises(ValueError, match=re.escape("Dense 's_unbuilt' (scratch) is not built")):
        copy_keras_to_scratch(keras_layer, unbuilt_scratch)

    _, scratch_layer = _built_dense_pair()
    unbuilt_keras = keras.layers.Dense(3, name="k_unbuilt")
    with pytest.raises(ValueError, match=re.escape("Dense 'k_unbuilt' (Keras) is not built")):
        copy_scratch_to_keras(scratch_layer, unbuilt_keras)


@pytest.mark.parametrize(
    ("keras_factory", "scratch_factory", "expected"),
    [
        (lambda: keras.layers.Dense(3, name="k_kind"), lambda: Flatten(name="s_kind"), "Dense"),
        (
            lambda: keras.layers.Activation("tanh", name="k_kind"),
            lambda: Sigmoid(name="s_kind"),
            "Tanh",
        ),
        (lambda: keras.layers.ReLU(name="k_kind"), lambda: LeakyReLU(name="s_kind"), "ReLU"),
    ],
)
def test_layer_kind_mismatch(keras_factory, scratch_factory, expected: str) -> None:
    keras_layer, scratch_layer = keras_factory(), scratch_factory()
    message = (
        f"{type(keras_layer).__name__} 'k_kind' (Keras) does not match "
        f"{type(scratch_layer).__name__} 's_kind' (scratch): expected a scratch {expected}."
    )

    with pytest.raises(TypeError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, scratch_layer)
    with pytest.raises(TypeError, match=re.escape(message)):
        copy_scratch_to_keras(scratch_layer, keras_layer)


def test_activation_without_twin() -> None:
    keras_layer = keras.layers.Activation("softmax", name="k_softmax")
    message = (
        "Activation 'k_softmax' (Keras) applies activation 'softmax', which has no scratch twin"
    )

    with pytest.raises(TypeError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, Linear())


def test_swapped_arguments_are_rejected() -> None:
    keras_layer, scratch_layer = _built_dense_pair()

    with pytest.raises(TypeError, match="Expected a scratch layer"):
        copy_keras_to_scratch(scratch_layer, keras_layer)
    with pytest.raises(TypeError, match="Expected a scratch layer"):
        copy_scratch_to_keras(keras_layer, scratch_layer)


def test_failed_copy_changes_nothing() -> None:
    keras_layer = keras.layers.BatchNormalization(name="k_bn")
    keras_layer.build((2, 4))
    keras_layer.set_weights(_random_weights(keras_layer, seed=4))
    scratch_layer = BatchNormalization(moving_variance_shape=(5,), name="s_bn")
    scratch_layer.build((2, 4))
    keras_before = keras_layer.get_weights()
    scratch_before = scratch_layer.get_weights()
    message = (
        "BatchNormalization 'k_bn' (Keras) moving_variance shape (4,) does not match "
        "BatchNormalization 's_bn' (scratch) moving_variance shape (5,)."
    )

    with pytest.raises(ValueError, match=re.escape(message)):
        copy_keras_to_scratch(keras_layer, scratch_layer)
    with pytest.raises(ValueError, match=re.escape(message)):
        copy_scratch_to_keras(scratch_layer, keras_layer)

    for before, after in zip(scratch_before, scratch_layer.get_weights(), strict=True):
        assert np.array_equal(before, after)
    for before, after in zip(keras_before, keras_layer.get_weights(), strict=True):
        assert np.array_equal(before, after)
