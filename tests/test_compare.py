"""Tests for the layer-by-layer comparison and the ``mnistgen compare`` command."""

from __future__ import annotations

import numpy as np
import pytest

from keras_impl import models as keras_models
from keras_impl.cli import build_parser, main
from keras_impl.compare import compare_models, first_failure, format_table
from keras_impl.model_weights import copy_keras_model_to_scratch
from scratch import models as scratch_models

NOISE_DIM = 8


def build_twins(preset, network, dtype):
    if network == "generator":
        keras_model = keras_models.build_generator(preset, NOISE_DIM, dtype, seed=0)
        scratch_model = scratch_models.build_generator(preset, NOISE_DIM, dtype, seed=1)
        x = np.random.default_rng(2).standard_normal((4, NOISE_DIM))
    else:
        keras_model = keras_models.build_discriminator(preset, dtype, seed=0)
        scratch_model = scratch_models.build_discriminator(preset, dtype, seed=1)
        x = np.random.default_rng(2).uniform(-1.0, 1.0, (4, 28, 28, 1))
    copy_keras_model_to_scratch(keras_model, scratch_model)
    return keras_model, scratch_model, x.astype(dtype)


@pytest.mark.equivalence
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("network", ["generator", "discriminator"])
@pytest.mark.parametrize("preset", ["dcgan", "tf-tutorial"])
def test_twins_pass_every_row(preset, network, training):
    keras_model, scratch_model, x = build_twins(preset, network, "float64")
    grad_output = np.random.default_rng(3).standard_normal(
        (4, *keras_model.outputs[0].shape[1:])
    )

    rows = compare_models(keras_model, scratch_model, x, grad_output, training=training)

    assert [row.name for row in rows] == [layer.name for layer in keras_model.layers]
    assert first_failure(rows) is None, format_table(rows)
    assert all(row.grad_input_scale > 0 for row in rows)
    with_weights = [row.name for row in rows if row.grad_params_diff is not None]
    assert with_weights == [layer.name for layer in keras_model.layers if layer.trainable_weights]


def test_wrong_backward_fails_only_its_row():
    keras_model, scratch_model, x = build_twins("dcgan", "generator", "float64")
    layer = scratch_model.get_layer("g_up1")
    correct_backward = layer.backward

    def doubled_backward(grad_output):
        return 2.0 * correct_backward(grad_output)

    layer.backward = doubled_backward

    rows = compare_models(keras_model, scratch_model, x, training=True)

    failure = first_failure(rows)
    assert failure is not None and failure.name == "g_up1"
    assert failure.forward_diff <= 1e-10 * failure.forward_scale
    assert failure.grad_input_diff > 0.5 * failure.grad_input_scale
    assert [row.name for row in rows if not row.passed] == ["g_up1"]
    assert "first failing layer: g_up1 (Conv2DTranspose)" in format_table(rows)


def test_perturbed_kernel_is_first_failing_row(dtype):
    keras_model, scratch_model, x = build_twins("dcgan", "discriminator", dtype)
    kernel = scratch_model.get_layer("d_conv2").params["kernel"]
    kernel[0, 0, 0, 0] += 0.01

    rows = compare_models(keras_model, scratch_model, x)

    assert first_failure(rows).name == "d_conv2"
    assert [row.name for row in rows if not row.passed] == ["d_conv2"]
    assert rows[2].forward_diff > 0


def test_copy_weights_repairs_perturbed_kernel():
    keras_model, scratch_model, x = build_twins("dcgan", "discriminator", "float64")
    scratch_model.get_layer("d_logits").params["kernel"][0, 0] += 1.0

    rows = compare_models(keras_model, scratch_model, x, copy_weights=True)

    assert first_failure(rows) is None


def test_format_table_lists_every_layer():
    keras_model, scratch_model, x = build_twins("dcgan", "discriminator", "float32")

    table = format_table(compare_models(keras_model, scratch_model, x))

    for header in ("layer", "class", "output shape", "forward", "grad input", "grad weights"):
        assert header in table
    for layer in keras_model.layers:
        assert layer.name in table
    assert "(4, 14, 14, 64)" in table
    assert "all 7 layers within 1e-05 x magnitude" in table


def test_compare_rejects_bad_inputs():
    keras_model, scratch_model, x = build_twins("dcgan", "discriminator", "float64")

    with pytest.raises(ValueError, match=r"grad_output shape \(4, 2\) does not match .*\(4, 1\)"):
        compare_models(keras_model, scratch_model, x, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="x dtype int64 is not supported"):
        compare_models(keras_model, scratch_model, x.astype(np.int64))


def test_cli_compare_prints_table(capsys):
    status = main(
        [
            "compare",
            "--preset",
            "dcgan",
            "--network",
            "discriminator",
            "--dtype",
            "float64",
            "--batch-size",
            "2",
            "--seed",
            "0",
            "--training",
        ]
    )

    output = capsys.readouterr().out
    assert status == 0
    assert "discriminator of preset 'dcgan', float64, batch 2, training mode" in output
    assert "d_bn2" in output
    assert "BatchNormalization" in output
    assert "all 7 layers within 1e-10 x magnitude" in output


def test_cli_compare_generator_defaults(capsys):
    status = main(["compare", "--noise-dim", "4", "--batch-size", "2"])

    output = capsys.readouterr().out
    assert status == 0
    assert "generator of preset 'dcgan', float64, batch 2, inference mode" in output
    assert "g_output" in output


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--preset", "wgan"])
    with pytest.raises(SystemExit):
        main(["compare", "--batch-size", "0"])
    with pytest.raises(SystemExit):
        main([])
    assert "invalid choice: 'wgan'" in capsys.readouterr().err


def test_parser_has_compare_subcommand():
    parser = build_parser()

    args = parser.parse_args(["compare", "--network", "discriminator"])

    assert args.command == "compare"
    assert args.network == "discriminator"
    assert args.dtype == "float64"
    assert args.batch_size == 4
    assert not args.training
