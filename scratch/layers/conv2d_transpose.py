"""Transposed 2-D convolution (Keras's ``Conv2DTranspose``), forward and backward by hand.

A transposed convolution is the input gradient of a convolution run as a
layer of its own. Take the convolution ``C`` that maps an image of the
*output* size to one of the *input* size with the same kernel, strides and
padding. Then

    Conv2DTranspose.forward(x)  = C's input gradient at dL/dy = x
    Conv2DTranspose.backward(g) = C's forward pass on g

which is how TensorFlow computes it (``tf.nn.conv2d_transpose`` calls
``conv2d_backprop_input``) and how the fast functions below are built from
``conv2d.py``. The loop versions live in ``conv_reference.py``.
"""

from __future__ import annotations

import numpy as np

from scratch import initializers
from scratch.layers import activations
from scratch.layers.base import Layer
from scratch.layers.conv2d import (
    conv2d_chunked_forward,
    conv2d_chunked_kernel_gradient,
    conv2d_input_gradient,
)
from scratch.layers.conv_reference import (
    conv2d_transpose_backward_loop,
    conv2d_transpose_forward_loop,
)
from scratch.layers.conv_utils import (
    Pads,
    check_data_format,
    check_dilation_rate,
    check_filters,
    check_implementation,
    check_input_channels,
    check_input_rank,
    conv_output_length,
    conv_transpose_output_length,
    conv_transpose_padding,
    normalize_padding,
    normalize_tuple,
)
from scratch.layers.im2col import SHARED_WORKSPACE, Workspace


# ---------------------------------------------------------------------- #
# Fast functions, shared with Conv2D
# ---------------------------------------------------------------------- #
def conv2d_transpose_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    output_size: tuple[int, int],
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Return the transposed convolution of ``x``, without bias.

    Maps to ``conv2d_transpose_forward_loop``: one product gives every input
    pixel's ``kh x kw`` patch, and ``col2im`` adds the patches onto the
    padded output, as the loop does one pixel and offset at a time.

    Args:
        x: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, filters, in_channels)``, Keras's transposed layout.
            Read as a Conv2D kernel it maps ``filters`` channels to ``in_channels``.
        strides: ``(sh, sw)``.
        pads: ``((top, bottom), (left, right))`` cropped off the output.
        output_size: ``(out_height, out_width)``.
        workspace: optional buffer for the patches before ``col2im`` adds them up.

    Returns:
        ``(batch, out_height, out_width, filters)``; can be a view into a
        padded buffer.
    """
    output_shape = (x.shape[0], *output_size, kernel.shape[2])
    return conv2d_input_gradient(x, kernel, output_shape, strides, pads, workspace)


def conv2d_transpose_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(dx, dkernel)`` for ``conv2d_transpose_forward``.

    Maps to ``conv2d_transpose_backward_loop``: ``dx`` is the convolution of
    dL/dy with the same kernel (products on the im2col matrix of dL/dy),
    and ``dkernel`` is that convolution's kernel gradient with ``x`` in the
    role of its dL/dy.
    """
    # Each function builds the im2col matrix of dL/dy one batch chunk at a
    # time, which costs a second im2col but keeps every matrix in the cache.
    dx = conv2d_chunked_forward(grad_output, kernel, strides, pads, workspace)  # (batch, H, W, in)
    dkernel = conv2d_chunked_kernel_gradient(
        grad_output, x, kernel.shape, strides, pads, workspace
    )  # (kh, kw, filters, in)
    return dx, dkernel


# ---------------------------------------------------------------------- #
# The layer
# ---------------------------------------------------------------------- #
class Conv2DTranspose(Layer):
    """Transposed 2-D convolution: ``y = activation(conv2d_transpose(x, kernel) + bias)``.

    Every input pixel ``(i, j)`` adds the patch ``x[b, i, j, :] @ kernel[di, dj].T``
    onto output pixel ``(i*sh + di, j*sw + dj)`` of a padded output, which is
    then cropped by ``(top, bottom)`` rows and ``(left, right)`` columns. With
    strides 2 this doubles height and width, which is why DCGAN generators use it.

    Output size along each spatial axis, for input length ``n``, kernel size
    ``k``, stride ``s`` and output padding ``p`` (Keras's rules):

    - ``"valid"``, ``p`` None: ``out = (n - 1) * s + max(k, s)``
    - ``"valid"``: ``out = (n - 1) * s + k + p``
    - ``"same"``, ``p`` None: ``out = n * s``
    - ``"same"``: ``out = (n - 1) * s + k % 2 + p``

    The crop is what a "same" or "valid" Conv2D from ``out`` back to ``n``
    would pad: ``total = max((n - 1) * s + k - out, 0)`` for "same" (0 for
    "valid"), ``top = total // 2`` and ``bottom = total - top``.

    Backward, with ``dz = dL/d(conv2d_transpose(x, kernel) + bias)``:
    ``dbias = sum of dz over batch, height and width``; ``dx`` is the plain
    convolution of ``dz`` with ``kernel``; ``dkernel[di, dj]`` sums
    ``dz_pad[pixel].T @ x[i, j]`` over the pixels each offset touched.

    Args:
        filters: number of output channels.
        kernel_size: int or pair ``(kh, kw)``.
        strides: int or pair ``(sh, sw)``; default ``(1, 1)``.
        padding: ``"valid"`` (default) or ``"same"``, case-insensitive.
        output_padding: None (default), an int or a pair, each ``>= 0`` and
            ``< strides``. An output padding of 0 with ``"same"`` and an even
            kernel size raises a ValueError, because TensorFlow rejects the
            shorter output it gives.
        data_format: None or ``"channels_last"``. ``"channels_first"`` raises
            NotImplementedError.
        dilation_rate: only ``(1, 1)`` (the default) is implemented.
        activation: None or a name accepted by ``scratch.layers.activations.get``.
        use_bias: add a bias per filter (default True).
        kernel_initializer: default ``"glorot_uniform"``.
        bias_initializer: default ``"zeros"``.
        name: layer name; defaults to ``conv2d_transpose``, ``conv2d_transpose_1``, ...
        dtype: ``"float32"``, ``"float64"`` or None (take the first input's).
        implementation: not a Keras argument. ``"fast"`` (default) uses
            matrix products; ``"loop"`` uses ``conv_reference.py``.

    Weights: ``kernel`` ``(kh, kw, filters, in_channels)`` (note the order),
    then ``bias`` ``(filters,)`` if ``use_bias``.

    Input shape: ``(batch, height, width, in_channels)``.
    Output shape: ``(batch, out_height, out_width, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        output_padding: int | tuple[int, int] | None = None,
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        name: str | None = None,
        dtype: object = None,
        *,
        implementation: str = "fast",
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        label = self.label
        self.filters = check_filters(filters, label)
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size", label)
        self.strides = normalize_tuple(strides, "strides", label)
        self.padding = normalize_padding(padding, label)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = normalize_tuple(
                output_padding, "output_padding", label, allow_zero=True
            )
            if any(p >= s for p, s in zip(self.output_padding, self.strides, strict=True)):
                raise ValueError(
                    f"{label}: `output_padding` must be strictly less than `strides` "
                    f"in every dimension, received output_padding={self.output_padding}, "
                    f"strides={self.strides}."
                )
        self.data_format = check_data_format(data_format, label)
        self.dilation_rate = check_dilation_rate(dilation_rate, self.strides, label)
        self.activation = activation
        self.activation_layer = activations.get(activation, name=f"{self.name}_activation")
        self.use_bias = bool(use_bias)
        # Keras treats None as "the default initialiser".
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.implementation = check_implementation(implementation, label)
        self._cache: tuple | None = None
        self._workspace = SHARED_WORKSPACE  # for the window matrices

    @property
    def label(self) -> str:
        """``"Conv2DTranspose 'name'"``, the prefix of every error message."""
        return f"{type(self).__name__} '{self.name}'"

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``kernel`` ``(kh, kw, filters, in_channels)`` and ``bias`` ``(filters,)``."""
        check_input_rank(input_shape, self.label)
        self.compute_output_shape(input_shape)
        if self.dtype is None:
            self.dtype = np.dtype("float32")

        kernel_shape = (*self.kernel_size, self.filters, int(input_shape[-1]))
        self.params["kernel"] = self.kernel_initializer(kernel_shape, self.dtype, self.rng)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,), self.dtype, self.rng)
        super().build(input_shape)

    def _output_length(self, axis: int, input_length: int) -> int:
        """Return the output length along ``axis`` (0 height, 1 width) after checking it."""
        kernel_size, stride = self.kernel_size[axis], self.strides[axis]
        output_padding = None if self.output_padding is None else self.output_padding[axis]
        length = conv_transpose_output_length(
            input_length, kernel_size, stride, self.padding, output_padding
        )
        # The matching convolution must map the output back to the input length,
        # or the transpose is undefined. Only "same" with an even kernel and
        # output_padding 0 breaks this, and TensorFlow fails at call time there.
        maps_back = conv_output_length(length, kernel_size, stride, self.padding) == input_length
        if length <= 0 or not maps_back:
            axis_name = ("height", "width")[axis]
            raise ValueError(
                f"{self.label}: with padding='{self.padding}', kernel size {kernel_size}, "
                f"stride {stride} and output_padding={self.output_padding}, the {axis_name} "
                f"{input_length} gives an output {axis_name} of {length}, which a "
                f"'{self.padding}' convolution does not map back to {input_length}. "
                "Use output_padding >= 1 for an even kernel with padding='same', or "
                "output_padding=None."
            )
        return length

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Return ``(batch, out_height, out_width, filters)`` by the rules in the class docstring.

        Raises:
            ValueError: for a non-4-D shape, or an output_padding that TensorFlow rejects.
        """
        check_input_rank(input_shape, self.label)
        batch, height, width, _ = input_shape
        return batch, self._output_length(0, height), self._output_length(1, width), self.filters

    def padding_amounts(self, input_shape: tuple[int, ...]) -> Pads:
        """Return ``((top, bottom), (left, right))`` cropped off the output for ``input_shape``.

        These are the zeros that the matching Conv2D, from the output size back
        to the input size, would pad its input with.
        """
        output_shape = self.compute_output_shape(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (
            conv_transpose_padding(input_shape[1], output_shape[1], kh, sh, self.padding),
            conv_transpose_padding(input_shape[2], output_shape[2], kw, sw, self.padding),
        )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        check_input_rank(x.shape, self.label)
        x = self._prepare_input(x)
        kernel = self.params["kernel"]
        check_input_channels(x.shape, kernel.shape[3], self.label)
        output_shape = self.compute_output_shape(x.shape)
        pads = self.padding_amounts(x.shape)
        output_size = output_shape[1:3]

        if self.implementation == "fast":
            z = conv2d_transpose_forward(
                x, kernel, self.strides, pads, output_size, self._workspace
            )
        else:
            z = conv2d_transpose_forward_loop(x, kernel, self.strides, pads, output_size)

        if self.use_bias:
            z += self.params["bias"]  # (batch, out_h, out_w, filters)

        self._cache = (output_shape, pads, kernel, x)
        if self.activation_layer is not None:
            return self.activation_layer.forward(z, training=training)
        return z

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray | None:
        """Return dL/dx and store dL/dkernel and dL/dbias (see ``Layer.backward``).

        ``weight_gradients=False`` skips the kernel product and empties
        ``self.grads``. dx and dkernel share one im2col matrix of dL/dy, so
        ``input_gradient=False`` only returns None instead of dx.
        """
        self._require_forward(self._cache)
        output_shape, pads, kernel, x = self._cache
        grad_output = self._check_grad_output(grad_output, output_shape)

        dz = grad_output
        if self.activation_layer is not None:
            dz = self.activation_layer.backward(grad_output)

        if not weight_gradients:
            self._discard_weight_gradients()

        if self.implementation == "loop":
            dx, dkernel = conv2d_transpose_backward_loop(dz, x, kernel, self.strides, pads)
        elif weight_gradients:
            dx, dkernel = conv2d_transpose_backward(
                dz, x, kernel, self.strides, pads, self._workspace
            )
        else:
            dx = conv2d_chunked_forward(dz, kernel, self.strides, pads, self._workspace)

        if weight_gradients:
            self.grads["kernel"] = dkernel
            if self.use_bias:
                self.grads["bias"] = dz.sum(axis=(0, 1, 2))  # (filters,)
        return dx if input_gradient else None

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "implementation": self.implementation,
        }
