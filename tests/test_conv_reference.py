"""Fast convolutions against the loop references, on the grids the Keras tests use.

The grids live here, because this file needs no Keras: ``test_conv2d.py``
and ``test_conv2d_transpose.py`` import ``CONV2D_CASES`` and
``CONV2D_TRANSPOSE_CASES`` from it. Spatial sizes stay tiny (3 to 7 pixels)
so that the loop versions and Keras stay fast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from scratch.layers.conv2d import Conv2D
from scratch.layers.conv2d_transpose import Conv2DTranspose
from scratch.layers.conv_reference import (
    conv2d_forward_loop,
    conv2d_transpose_forward_loop,
)


@dataclass(frozen=True)
class ConvCase:
    """One layer configuration and the input shape to run it on."""

    input_shape: tuple[int, int, int, int]
    filters: int
    kernel_size: int | tuple[int, int]
    strides: int | tuple[int, int]
    padding: str
    extra: dict = field(default_factory=dict)

    def kwargs(self) -> dict:
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            **self.extra,
        }

    @property
    def id(self) -> str:
        """A short test id such as ``k3-s2-same-2x5x7x3-f2-op1``."""
        extra = "".join(f"-op{_format(value)}" for value in self.extra.values())
        return (
            f"k{_format(self.kernel_size)}-s{_format(self.strides)}-{self.padding}-"
            f"{_format(self.input_shape)}-f{self.filters}{extra}"
        )


def _format(value: int | tuple[int, ...]) -> str:
    return "x".join(str(size) for size in value) if isinstance(value, tuple) else str(value)


# Inputs cycle through odd, even and non-square sizes, 1 or several channels
# and batch sizes 1 to 3; filters cycle through 1, 2 and 3.
CONV2D_INPUTS = [(2, 5, 7, 3), (1, 6, 6, 1), (3, 7, 5, 2), (2, 6, 6, 4)]
TRANSPOSE_INPUTS = [(2, 3, 4, 3), (1, 4, 4, 1), (3, 4, 3, 2), (2, 3, 3, 4)]
FILTERS = [1, 2, 3]


def _conv2d_cases() -> list[ConvCase]:
    cases = []
    grid = itertools.product(range(1, 6), range(1, 4), ("same", "valid"))
    for index, (kernel_size, strides, padding) in enumerate(grid):
        input_shape = CONV2D_INPUTS[(index // 2) % len(CONV2D_INPUTS)]
        filters = FILTERS[index % len(FILTERS)]
        cases.append(ConvCase(input_shape, filters, kernel_size, strides, padding))
    # Non-square kernels and strides.
    cases += [
        ConvCase((2, 5, 7, 3), 2, (2, 3), (1, 2), "valid"),
        ConvCase((1, 6, 6, 2), 3, (3, 1), (2, 1), "same"),
        ConvCase((2, 7, 5, 1), 2, (1, 4), (3, 2), "valid"),
        ConvCase((3, 6, 7, 2), 1, (5, 2), (2, 3), "same"),
    ]
    return cases


def _conv2d_transpose_cases() -> list[ConvCase]:
    cases = []
    index = 0
    for kernel_size, strides, padding in itertools.product(
        range(1, 6), range(1, 4), ("same", "valid")
    ):
        for output_padding in [None, *range(strides)]:
            # TensorFlow rejects "same" with an even kernel and output_padding 0;
            # the bad-input tests cover that case.
            if padding == "same" and kernel_size % 2 == 0 and output_padding == 0:
                continue
            input_shape = TRANSPOSE_INPUTS[(index // 3) % len(TRANSPOSE_INPUTS)]
            filters = FILTERS[index % len(FILTERS)]
            extra = {} if output_padding is None else {"output_padding": output_padding}
            cases.append(ConvCase(input_shape, filters, kernel_size, strides, padding, extra))
            index += 1
    cases += [
        ConvCase((2, 3, 4, 3), 2, (2, 3), (1, 2), "same"),
        ConvCase((1, 4, 3, 2), 3, (4, 3), (2, 3), "same", {"output_padding": (1, 2)}),
        ConvCase((2, 3, 4, 1), 2, (3, 1), (3, 1), "valid", {"output_padding": (2, 0)}),
        ConvCase((3, 4, 4, 2), 1, (1, 5), (2, 2), "valid"),
    ]
    return cases


CONV2D_CASES = _conv2d_cases()
CONV2D_TRANSPOSE_CASES = _conv2d_transpose_cases()


def _random_bias(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _compare_implementations(layer_class: type, case: ConvCase, dtype: str, seed: int) -> None:
    """Run the fast and the loop layer on the same weights and compare everything."""
    rng = np.random.default_rng(seed)
    fast = layer_class(**case.kwargs(), dtype=dtype, bias_initializer=_random_bias)
    loop = layer_class(**case.kwargs(), dtype=dtype, implementation="loop")
    fast.build(case.input_shape)
    loop.build(case.input_shape)
    loop.set_weights(fast.get_weights())
    x = rng.standard_normal(case.input_shape).astype(dtype)

    output = fast.forward(x, training=True)
    expected_output = loop.forward(x, training=True)
    grad_output = rng.standard_normal(expected_output.shape).astype(dtype)
    grad_input = fast.backward(grad_output)
    expected_grad_input = loop.backward(grad_output)

    assert_close("output", output, expected_output)
    assert_close("dL/dx", grad_input, expected_grad_input)
    assert_close("dL/dkernel", fast.grads["kernel"], loop.grads["kernel"])
    assert_close("dL/dbias", fast.grads["bias"], loop.grads["bias"])
    for name, value in [
        ("output", output),
        ("dL/dx", grad_input),
        ("dL/dkernel", fast.grads["kernel"]),
        ("dL/dbias", fast.grads["bias"]),
    ]:
        assert_same_dtype(name, value, dtype)


@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda case: case.id)
def test_conv2d_fast_matches_loop(case: ConvCase, dtype: str) -> None:
    _compare_implementations(Conv2D, case, dtype, seed=len(case.id))


@pytest.mark.parametrize("case", CONV2D_TRANSPOSE_CASES, ids=lambda case: case.id)
def test_conv2d_transpose_fast_matches_loop(case: ConvCase, dtype: str) -> None:
    _compare_implementations(Conv2DTranspose, case, dtype, seed=len(case.id))


@pytest.mark.parametrize("case", CONV2D_TRANSPOSE_CASES, ids=lambda case: case.id)
def test_loop_transpose_is_adjoint_of_loop_conv(case: ConvCase) -> None:
    """<conv(z), x> == <z, conv_transpose(x)> for the two loop references.

    The two loops are written independently, so this ties the transpose's
    index map and crop to the convolution's, without Keras and in float64.
    """
    rng = np.random.default_rng(len(case.id))
    layer = Conv2DTranspose(**case.kwargs(), dtype="float64")
    layer.build(case.input_shape)
    output_shape = layer.compute_output_shape(case.input_shape)
    pads = layer.padding_amounts(case.input_shape)
    kernel = layer.params["kernel"]  # (kh, kw, filters, in): a conv kernel from filters to in
    x = rng.standard_normal(case.input_shape)
    z = rng.standard_normal(output_shape)

    conv_z = conv2d_forward_loop(z, kernel, layer.strides, pads)
    transpose_x = conv2d_transpose_forward_loop(x, kernel, layer.strides, pads, output_shape[1:3])

    assert conv_z.shape == x.shape
    assert_close("<conv(z), x>", np.sum(conv_z * x), np.sum(z * transpose_x))
