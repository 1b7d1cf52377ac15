"""Tests for the presets, both model builders and the whole-model weight copy.

The forward tests build each network twice from one preset, copy the Keras
weights into the scratch model (with non-trivial moving statistics) and
compare the outputs in inference and training mode.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import assert_close

from keras_impl import models as keras_models
from keras_impl.compare import compare_models, first_failure
from keras_impl.model_weights import (
    copy_keras_model_to_scratch,
    copy_scratch_model_to_keras,
    keras_weights_by_key,
    pair_layers,
)
from scratch import models as scratch_models
from scratch.architectures import (
    PRESETS,
    LayerSpec,
    OptimizerSpec,
    get_preset,
    with_dropout_rate,
)
from scratch.layers.activations import LeakyReLU, ReLU
from scratch.sequential import Sequential

NOISE_DIM = 8
PRESET_NAMES = sorted(PRESETS)
NETWORKS = ("generator", "discriminator")


def build_keras(preset, network, dtype, seed=0, noise_dim=NOISE_DIM):
    if network == "generator":
        return keras_models.build_generator(preset, noise_dim, dtype, seed=seed)
    return keras_models.build_discriminator(preset, dtype, seed=seed)


def build_scratch(preset, network, dtype, seed=0, noise_dim=NOISE_DIM):
    if network == "generator":
        return scratch_models.build_generator(preset, noise_dim, dtype, seed=seed)
    return scratch_models.build_discriminator(preset, dtype, seed=seed)


def build_twins(preset, network, dtype, seed=0):
    """Both models of ``network`` with the Keras weights and random moving statistics in both."""
    keras_model = build_keras(preset, network, dtype, seed)
    rng = np.random.default_rng(seed + 100)
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, size).astype(dtype))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype(dtype))
    scratch_model = build_scratch(preset, network, dtype, seed + 1)
    copy_keras_model_to_scratch(keras_model, scratch_model)
    return keras_model, scratch_model


def network_input(network, dtype, batch_size=4, seed=1):
    rng = np.random.default_rng(seed)
    if network == "generator":
        return rng.standard_normal((batch_size, NOISE_DIM)).astype(dtype)
    return rng.uniform(-1.0, 1.0, (batch_size, 28, 28, 1)).astype(dtype)


# ---------------------------------------------------------------------- #
# Presets
# ---------------------------------------------------------------------- #
def test_get_preset_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown preset 'wgan'; expected one of \['dcgan', "):
        get_preset("wgan")


def test_get_preset_passes_preset_through():
    preset = get_preset("dcgan")

    assert get_preset(preset) is preset
    assert preset.description


def test_preset_layers_rejects_unknown_network():
    with pytest.raises(ValueError, match="unknown network 'critic'"):
        get_preset("dcgan").layers("critic")


def test_layer_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown layer kind 'Conv3D'"):
        LayerSpec("Conv3D", "d_conv1")


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_layer_names_unique_and_prefixed(name):
    preset = get_preset(name)

    for network, prefix in (("generator", "g_"), ("discriminator", "d_")):
        names = [spec.name for spec in preset.layers(network)]
        assert len(set(names)) == len(names), names
        assert all(layer_name.startswith(prefix) for layer_name in names), names


def test_dcgan_follows_paper_rules():
    preset = get_preset("dcgan")
    generator, discriminator = preset.generator, preset.discriminator
    kinds_g = [spec.kind for spec in generator]
    kinds_d = [spec.kind for spec in discriminator]

    # G: one Dense projection (no bias), BN + ReLU, strided transposed convolutions.
    assert kinds_g.count("Dense") == 1
    assert generator[0].kind == "Dense"
    assert generator[0].args["use_bias"] is False
    assert kinds_g[1:3] == ["BatchNormalization", "ReLU"]
    assert "LeakyReLU" not in kinds_g
    # No BN on G's output: the last layer is a transposed convolution with tanh.
    assert generator[-1].kind == "Conv2DTranspose"
    assert generator[-1].args["activation"] == "tanh"
    assert generator[-1].args["filters"] == 1
    # D: strided convolutions, no BN right after the input, one Dense for the logit.
    assert discriminator[0].kind == "Conv2D"
    assert discriminator[1].kind == "LeakyReLU"
    assert kinds_d.count("Dense") == 1
    assert discriminator[-1].kind == "Dense"
    assert discriminator[-1].args["units"] == 1
    assert "ReLU" not in kinds_d
    assert "BatchNormalization" in kinds_d
    for spec in (*generator, *discriminator):
        if spec.kind in ("Conv2D", "Conv2DTranspose"):
            assert spec.args["strides"] == 2, spec.name
            assert spec.args["padding"] == "same", spec.name
        if spec.kind in ("Dense", "Conv2D", "Conv2DTranspose"):
            assert spec.args["kernel_initializer"]["config"] == {"mean": 0.0, "stddev": 0.02}
        if spec.kind == "LeakyReLU":
            assert spec.args["negative_slope"] == 0.2
    assert preset.g_optimizer == preset.d_optimizer == OptimizerSpec(2e-4, beta_1=0.5)


def test_tf_tutorial_uses_keras_defaults():
    preset = get_preset("tf-tutorial")
    keras_discriminator = keras_models.build_discriminator(preset)
    scratch_discriminator = scratch_models.build_discriminator(preset)

    default_slope = keras.layers.LeakyReLU().negative_slope
    assert default_slope == pytest.approx(0.3)
    for name in ("d_lrelu1", "d_lrelu2"):
        assert keras_discriminator.get_layer(name).negative_slope == default_slope
        assert scratch_discriminator.get_layer(name).negative_slope == default_slope
    kernel_initializer = keras_discriminator.get_layer("d_conv1").kernel_initializer
    assert isinstance(kernel_initializer, keras.initializers.GlorotUniform)
    assert keras_discriminator.get_layer("d_dropout1").rate == 0.3
    assert preset.g_optimizer == preset.d_optimizer == OptimizerSpec(1e-4)


def test_with_dropout_rate_replaces_only_dropout():
    preset = get_preset("tf-tutorial")

    changed = with_dropout_rate(preset, 0.0)

    for old, new in zip(preset.discriminator, changed.discriminator, strict=True):
        if old.kind == "Dropout":
            assert new.args["rate"] == 0.0
        else:
            assert new == old
    assert changed.generator == preset.generator
    with pytest.raises(ValueError, match="Dropout rate must be in"):
        with_dropout_rate(preset, 1.0)


# ---------------------------------------------------------------------- #
# Builders
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_builders_agree_layer_by_layer(name, network):
    keras_model = build_keras(name, network, "float32")
    scratch_model = build_scratch(name, network, "float32")

    pairs = pair_layers(keras_model, scratch_model)

    for keras_layer, scratch_layer in pairs:
        assert type(keras_layer).__name__ == type(scratch_layer).__name__
        assert keras_layer.name == scratch_layer.name
    assert scratch_model.count_params() == keras_model.count_params()
    assert scratch_model.output_shape[1:] == tuple(keras_model.outputs[0].shape[1:])
    assert sorted(scratch_model.state) == sorted(
        key for key in keras_weights_by_key(keras_model) if "moving" in key
    )


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_summary_reports_keras_param_counts(name):
    scratch_model = build_scratch(name, "generator", "float32", noise_dim=100)
    keras_model = build_keras(name, "generator", "float32", noise_dim=100)

    text = scratch_model.summary()

    assert f"Total params: {keras_model.count_params():,}" in text
    trainable = sum(int(np.prod(weight.shape)) for weight in keras_model.trainable_weights)
    assert f"Trainable params: {trainable:,}" in text
    assert "g_project (Dense)" in text


def test_scratch_seed_reproduces_weights():
    first = build_scratch("dcgan", "discriminator", "float64", seed=3)
    second = build_scratch("dcgan", "discriminator", "float64", seed=3)
    other = build_scratch("dcgan", "discriminator", "float64", seed=4)

    for key, value in first.params.items():
        assert np.array_equal(second.params[key], value), key
    assert not np.array_equal(other.params["d_conv1/kernel"], first.params["d_conv1/kernel"])


def test_keras_seed_reproduces_weights():
    first = build_keras("tf-tutorial", "discriminator", "float32", seed=3)
    second = build_keras("tf-tutorial", "discriminator", "float32", seed=3)
    other = build_keras("tf-tutorial", "discriminator", "float32", seed=4)

    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize("side", ["scratch", "keras"])
def test_dcgan_kernels_drawn_from_normal_002(side):
    builder = build_scratch if side == "scratch" else build_keras
    model = builder("dcgan", "generator", "float64", seed=5, noise_dim=100)
    if side == "scratch":
        weights = {**model.params, **model.state}
    else:
        weights = keras_weights_by_key(model)

    kernel = weights["g_project/kernel"]  # 627,200 draws
    assert abs(kernel.mean()) < 1e-3
    assert kernel.std() == pytest.approx(0.02, rel=0.01)
    assert weights["g_up1/kernel"].std() == pytest.approx(0.02, rel=0.02)
    assert np.all(weights["g_output/bias"] == 0.0)
    assert np.all(weights["g_bn0/gamma"] == 1.0)


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="noise_dim must be a positive integer, received 0"):
        scratch_models.build_generator("dcgan", noise_dim=0)
    with pytest.raises(ValueError, match="noise_dim must be a positive integer, received 0"):
        keras_models.build_generator("dcgan", noise_dim=0)
    with pytest.raises(TypeError, match="dtype int32 is not supported"):
        scratch_models.build_discriminator("dcgan", dtype="int32")
    with pytest.raises(ValueError, match="Unknown preset"):
        scratch_models.build_discriminator("nope")


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_optimizers_follow_preset(name):
    preset = get_preset(name)
    scratch_d, scratch_g = scratch_models.build_optimizers(preset)
    keras_d, keras_g = keras_models.build_optimizers(preset)

    for spec, scratch_optimizer, keras_optimizer in (
        (preset.d_optimizer, scratch_d, keras_d),
        (preset.g_optimizer, scratch_g, keras_g),
    ):
        assert scratch_optimizer.learning_rate == spec.learning_rate
        assert float(keras_optimizer.learning_rate) == pytest.approx(spec.learning_rate)
        for argument in ("beta_1", "beta_2", "epsilon"):
            assert getattr(scratch_optimizer, argument) == getattr(spec, argument)
            assert getattr(keras_optimizer, argument) == getattr(spec, argument)
    assert scratch_d is not scratch_g
    assert keras_d is not keras_g


# ---------------------------------------------------------------------- #
# Whole-model weight copy
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_copy_round_trip_both_directions(name):
    keras_model, scratch_model = build_twins(name, "generator", "float64")
    target = build_keras(name, "generator", "float64", seed=9)

    copy_scratch_model_to_keras(scratch_model, target)

    expected = keras_weights_by_key(keras_model)
    actual = keras_weights_by_key(target)
    for key, value in expected.items():
        assert np.array_equal(actual[key], value), key
    assert np.array_equal(scratch_model.state["g_bn0/moving_mean"], expected["g_bn0/moving_mean"])


def test_copy_rejects_other_preset():
    keras_model = build_keras("dcgan", "generator", "float32")
    scratch_model = build_scratch("tf-tutorial", "generator", "float32")

    with pytest.raises(ValueError, match=r"'generator' has 8 layers .* 'generator' has 11"):
        copy_keras_model_to_scratch(keras_model, scratch_model)


def test_copy_rejects_shape_mismatch_and_changes_nothing():
    keras_model = build_keras("dcgan", "generator", "float32", noise_dim=16)
    scratch_model = build_scratch("dcgan", "generator", "float32", noise_dim=8)
    before = scratch_model.get_weights()

    with pytest.raises(
        ValueError,
        match=r"Keras layer 'g_project' \(Dense\) weight 'kernel' has shape \(16, 6272\) but "
        r"scratch layer 'g_project' \(Dense\) weight 'kernel' has shape \(8, 6272\)",
    ):
        copy_keras_model_to_scratch(keras_model, scratch_model)
    for old, new in zip(before, scratch_model.get_weights(), strict=True):
        assert np.array_equal(old, new)


def test_copy_rejects_dtype_mismatch():
    keras_model = build_keras("dcgan", "discriminator", "float32")
    scratch_model = build_scratch("dcgan", "discriminator", "float64")

    with pytest.raises(TypeError, match="has dtype float32 but .* has dtype float64"):
        copy_keras_model_to_scratch(keras_model, scratch_model)


def test_copy_rejects_other_kind_and_name():
    keras_model = keras.Sequential(
        [keras.Input((3,)), keras.layers.LeakyReLU(name="act"), keras.layers.ReLU(name="relu")]
    )
    wrong_kind = Sequential([ReLU(name="act"), ReLU(name="relu")])
    wrong_name = Sequential([LeakyReLU(name="act"), ReLU(name="other")])

    with pytest.raises(ValueError, match=r"'act' \(LeakyReLU\) and .* \(ReLU\) are different"):
        copy_keras_model_to_scratch(keras_model, wrong_kind)
    with pytest.raises(ValueError, match="'relu' .* 'other' .* have different names"):
        copy_keras_model_to_scratch(keras_model, wrong_name)
    copy_keras_model_to_scratch(keras_model, wrong_name, check_names=False)


# ---------------------------------------------------------------------- #
# Forward passes against Keras
# ---------------------------------------------------------------------- #
@pytest.mark.equivalence
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_forward_matches_keras(name, network, training, dtype):
    # Keras draws dropout masks from TensorFlow's generator, so the chained
    # comparison switches dropout off; test_dropout_training_matches_keras_masks
    # checks the layers with dropout on, reusing Keras's masks.
    preset = with_dropout_rate(name, 0.0)
    keras_model, scratch_model = build_twins(preset, network, dtype)
    x = network_input(network, dtype)

    expected = np.asarray(keras_model(x, training=training))
    actual = scratch_model.forward(x, training=training)

    assert actual.dtype == np.dtype(dtype)
    assert_close(f"{name} {network} output", actual, expected)
    keras_state = keras_weights_by_key(keras_model)
    for key, value in scratch_model.state.items():
        assert_close(f"{key} after forward", value, keras_state[key])


@pytest.mark.equivalence
def test_dropout_training_matches_keras_masks(dtype):
    keras_model, scratch_model = build_twins("tf-tutorial", "discriminator", dtype)
    x = network_input("discriminator", dtype)
    grad_output = np.random.default_rng(2).standard_normal((4, 1)).astype(dtype)

    rows = compare_models(keras_model, scratch_model, x, grad_output, training=True)

    assert first_failure(rows) is None, [row for row in rows if not row.passed]
    dropout_rows = [row for row in rows if row.kind == "Dropout"]
    assert len(dropout_rows) == 2
    assert all(row.forward_scale > 0 for row in dropout_rows)
