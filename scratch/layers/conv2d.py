"""2-D convolution (Keras's ``Conv2D``), forward and backward by hand.

The fast functions here are the convolution written as matrix products over
an im2col matrix. ``conv2d_input_gradient`` is also the forward pass of
``Conv2DTranspose``, and ``conv2d_forward`` its backward pass (see
``conv2d_transpose.py``). The loop versions they must agree with live in
``conv_reference.py``.
"""

from __future__ import annotations

import numpy as np

from scratch import initializers
from scratch.layers import activations
from scratch.layers.base import Layer
from scratch.layers.conv_reference import conv2d_backward_loop, conv2d_forward_loop
from scratch.layers.conv_utils import (
    Pads,
    check_data_format,
    check_dilation_rate,
    check_filters,
    check_groups,
    check_implementation,
    check_input_channels,
    check_input_rank,
    conv_output_length,
    conv_padding,
    normalize_padding,
    normalize_tuple,
)
from scratch.layers.im2col import (
    SHARED_WORKSPACE,
    Workspace,
    batch_chunks,
    col2im,
    crop_spatial,
    im2col,
    pad_spatial,
    windowed_output_size,
)


# ---------------------------------------------------------------------- #
# Fast functions: im2col and one matrix product per gradient
# ---------------------------------------------------------------------- #
def conv2d_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Convolve ``x`` with ``kernel`` and return ``(y, columns)``, without bias.

    Maps to ``conv2d_forward_loop``: its four loops become one product
    ``columns @ kernel_matrix``, where row ``(b, i, j)`` of ``columns`` is the
    window that the loop reads for output pixel ``(i, j)``.

    Args:
        x: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, filters)``.
        strides: ``(sh, sw)``.
        pads: zeros added ``((top, bottom), (left, right))`` before convolving.
        workspace: optional buffer for the im2col matrix. The returned matrix
            is then that buffer, valid only until the workspace's next use.

    Returns:
        ``y`` of shape ``(batch, out_height, out_width, filters)`` and the im2col
        matrix ``(batch * out_height * out_width, kh * kw * in_channels)``,
        which ``conv2d_kernel_gradient`` needs in the backward pass.
    """
    kh, kw, in_channels, filters = kernel.shape
    x_pad = pad_spatial(x, pads)  # (batch, top + H + bottom, left + W + right, in)
    out_height, out_width = windowed_output_size(x_pad.shape, (kh, kw), strides)

    rows = x.shape[0] * out_height * out_width
    out = None if workspace is None else workspace.get((rows, kh * kw * in_channels), x.dtype)
    columns = im2col(x_pad, (kh, kw), strides, out=out)  # (batch * out_h * out_w, kh * kw * in)
    kernel_matrix = kernel.reshape(kh * kw * in_channels, filters)
    y = columns @ kernel_matrix  # (batch * out_h * out_w, filters)

    return y.reshape(x.shape[0], out_height, out_width, filters), columns


def conv2d_chunked_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Return ``conv2d_forward``'s ``y`` only, one chunk of the batch at a time.

    The same products as ``conv2d_forward``, but each chunk's im2col matrix is
    still in the processor's cache when the product reads it (see
    ``batch_chunks``), and no matrix is kept for the backward pass.
    """
    kh, kw, in_channels, filters = kernel.shape
    x_pad = pad_spatial(x, pads)  # (batch, top + H + bottom, left + W + right, in)
    out_height, out_width = windowed_output_size(x_pad.shape, (kh, kw), strides)
    kernel_matrix = kernel.reshape(kh * kw * in_channels, filters)
    y = np.empty((x.shape[0], out_height, out_width, filters), dtype=x.dtype)

    bytes_per_sample = out_height * out_width * kernel_matrix.shape[0] * x.itemsize
    for chunk in batch_chunks(x.shape[0], bytes_per_sample):
        rows = (chunk.stop - chunk.start) * out_height * out_width
        out = None if workspace is None else workspace.get((rows, kernel_matrix.shape[0]), x.dtype)
        columns = im2col(x_pad[chunk], (kh, kw), strides, out=out)  # (rows, kh * kw * in)
        np.matmul(columns, kernel_matrix, out=y[chunk].reshape(rows, filters))
    return y


def conv2d_chunked_kernel_gradient(
    x: np.ndarray,
    grad_output: np.ndarray,
    kernel_shape: tuple[int, ...],
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Return ``conv2d_kernel_gradient`` from ``x`` itself, one chunk of the batch at a time.

    Sums ``columns.T @ dy`` over the chunks, each chunk's im2col matrix
    rebuilt from ``x`` while the product can read it from the cache.
    """
    kh, kw, in_channels, filters = kernel_shape
    x_pad = pad_spatial(x, pads)  # (batch, top + H + bottom, left + W + right, in)
    out_height, out_width = grad_output.shape[1:3]
    window_size = kh * kw * in_channels
    dkernel = np.zeros((window_size, filters), dtype=x.dtype)

    bytes_per_sample = out_height * out_width * window_size * x.itemsize
    for chunk in batch_chunks(x.shape[0], bytes_per_sample):
        rows = (chunk.stop - chunk.start) * out_height * out_width
        out = None if workspace is None else workspace.get((rows, window_size), x.dtype)
        columns = im2col(x_pad[chunk], (kh, kw), strides, out=out)  # (rows, kh * kw * in)
        dkernel += columns.T @ grad_output[chunk].reshape(rows, filters)
    return dkernel.reshape(kernel_shape)


def conv2d_kernel_gradient(
    columns: np.ndarray, grad_output: np.ndarray, kernel_shape: tuple[int, ...]
) -> np.ndarray:
    """Return dL/dkernel = ``columns.T @ dy``, reshaped to ``kernel_shape``.

    Maps to the ``dkernel[di, dj] += ...`` line of ``conv2d_backward_loop``:
    the product sums it over batch and output pixels at once.
    """
    dy = grad_output.reshape(-1, kernel_shape[-1])  # (batch * out_h * out_w, filters)
    return (columns.T @ dy).reshape(kernel_shape)


def conv2d_input_gradient(
    grad_output: np.ndarray,
    kernel: np.ndarray,
    input_shape: tuple[int, int, int, int],
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Return dL/dx of a convolution given dL/dy (also Conv2DTranspose's forward pass).

    Maps to the ``dx_pad[...] += ...`` line of ``conv2d_backward_loop``: one
    product gives every window's gradient, and ``col2im`` adds the windows
    back onto the padded input, whose border is then cropped. Both run on
    chunks of the batch (``batch_chunks``), which gives the same sums.

    Args:
        grad_output: dL/dy, ``(batch, out_height, out_width, filters)``.
        kernel: ``(kh, kw, in_channels, filters)``.
        input_shape: ``(batch, height, width, in_channels)`` of x, before padding.
        strides, pads: as in the forward call.
        workspace: optional buffer for the window gradients ``dcolumns``.

    Returns:
        ``(batch, height, width, in_channels)``. It can be a view into a
        padded buffer (no copy is made to crop).
    """
    kh, kw, in_channels, filters = kernel.shape
    (top, bottom), (left, right) = pads
    batch, height, width, _ = input_shape

    kernel_matrix = kernel.reshape(kh * kw * in_channels, filters)
    padded_shape = (batch, top + height + bottom, left + width + right, in_channels)
    dx_pad = np.zeros(padded_shape, dtype=grad_output.dtype)

    # One chunk of the batch at a time, so that col2im reads the window
    # gradients from the cache right after the product wrote them.
    pixels = grad_output.shape[1] * grad_output.shape[2]
    bytes_per_sample = pixels * kernel_matrix.shape[0] * grad_output.itemsize
    for chunk in batch_chunks(batch, bytes_per_sample):
        dy = grad_output[chunk].reshape(-1, filters)  # (chunk * out_h * out_w, filters)
        if workspace is None:
            dcolumns = dy @ kernel_matrix.T  # (chunk * out_h * out_w, kh * kw * in)
        else:
            dcolumns = workspace.get((dy.shape[0], kh * kw * in_channels), dy.dtype)
            np.matmul(dy, kernel_matrix.T, out=dcolumns)
        chunk_shape = (dy.shape[0] // pixels, *padded_shape[1:])
        col2im(dcolumns, chunk_shape, (kh, kw), strides, out=dx_pad[chunk])

    return crop_spatial(dx_pad, pads)  # (batch, H, W, in)


def conv2d_backward(
    grad_output: np.ndarray,
    columns: np.ndarray,
    kernel: np.ndarray,
    input_shape: tuple[int, int, int, int],
    strides: tuple[int, int],
    pads: Pads,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(dx, dkernel)`` from dL/dy and the forward pass's ``columns``.

    Maps to ``conv2d_backward_loop``, with one matrix product per gradient.
    ``columns`` may live in ``workspace``: it is read for dkernel before dx's
    window gradients overwrite the buffer.
    """
    dkernel = conv2d_kernel_gradient(columns, grad_output, kernel.shape)
    del columns
    dx = conv2d_input_gradient(grad_output, kernel, input_shape, strides, pads, workspace)
    return dx, dkernel


# ---------------------------------------------------------------------- #
# The layer
# ---------------------------------------------------------------------- #
class Conv2D(Layer):
    """2-D convolution: ``y = activation(conv2d(x, kernel) + bias)``.

    As in Keras, "convolution" means cross-correlation: the kernel is not
    flipped::

        y[b, i, j, f] = bias[f] + sum over di, dj, c of
                        x_pad[b, i*sh + di, j*sw + dj, c] * kernel[di, dj, c, f]

    where ``x_pad`` is ``x`` with the padding below.

    Output size along each spatial axis, for input length ``n``, kernel size
    ``k`` and stride ``s`` (TensorFlow's rules):

    - ``padding="valid"``: ``out = floor((n - k) / s) + 1``, no zeros added;
      ``n < k`` raises a ValueError.
    - ``padding="same"``: ``out = ceil(n / s)``; ``total = max((out - 1) * s
      + k - n, 0)`` zeros are added, ``total // 2`` at the top (left) and the
      rest at the bottom (right).

    Backward, with ``dz = dL/d(conv2d(x, kernel) + bias)``:
    ``dbias = sum of dz over batch, height and width``;
    ``dkernel[di, dj] = sum of x_pad[window].T @ dz[pixel]``; ``dx`` sends
    ``dz[pixel] @ kernel[di, dj].T`` back to every input pixel of each window.

    Args:
        filters: number of output channels.
        kernel_size: int or pair ``(kh, kw)``.
        strides: int or pair ``(sh, sw)``; default ``(1, 1)``.
        padding: ``"valid"`` (default) or ``"same"``, case-insensitive.
        data_format: None or ``"channels_last"``. ``"channels_first"`` raises
            NotImplementedError.
        dilation_rate: only ``(1, 1)`` (the default) is implemented.
        groups: only 1 (the default) is implemented.
        activation: None or a name accepted by ``scratch.layers.activations.get``.
        use_bias: add a bias per filter (default True).
        kernel_initializer: default ``"glorot_uniform"``.
        bias_initializer: default ``"zeros"``.
        name: layer name; defaults to ``conv2d``, ``conv2d_1``, ... as in Keras.
        dtype: ``"float32"``, ``"float64"`` or None (take the first input's).
        implementation: not a Keras argument. ``"fast"`` (default) uses im2col
            and matrix products; ``"loop"`` uses ``conv_reference.py``.

    Weights: ``kernel`` ``(kh, kw, in_channels, filters)``, then ``bias``
    ``(filters,)`` if ``use_bias``, as in Keras's ``get_weights()``.

    Input shape: ``(batch, height, width, in_channels)``.
    Output shape: ``(batch, out_height, out_width, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        groups: int = 1,
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
        self.data_format = check_data_format(data_format, label)
        self.dilation_rate = check_dilation_rate(dilation_rate, self.strides, label)
        self.groups = check_groups(groups, self.filters, label)
        self.activation = activation
        self.activation_layer = activations.get(activation, name=f"{self.name}_activation")
        self.use_bias = bool(use_bias)
        # Keras treats None as "the default initialiser".
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.implementation = check_implementation(implementation, label)
        self._cache: tuple | None = None
        self._workspace = SHARED_WORKSPACE  # for the im2col matrix and its gradient

    @property
    def label(self) -> str:
        """``"Conv2D 'name'"``, the prefix of every error message."""
        return f"{type(self).__name__} '{self.name}'"

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``kernel`` ``(kh, kw, in_channels, filters)`` and ``bias`` ``(filters,)``."""
        check_input_rank(input_shape, self.label)
        self.compute_output_shape(input_shape)
        if self.dtype is None:
            self.dtype = np.dtype("float32")

        kernel_shape = (*self.kernel_size, int(input_shape[-1]), self.filters)
        self.params["kernel"] = self.kernel_initializer(kernel_shape, self.dtype, self.rng)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,), self.dtype, self.rng)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Return ``(batch, out_height, out_width, filters)`` by the rules in the class docstring.

        Raises:
            ValueError: for a non-4-D shape, or an input smaller than the
                kernel with ``padding="valid"``.
        """
        check_input_rank(input_shape, self.label)
        batch, height, width, _ = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        out_height = conv_output_length(height, kh, sh, self.padding)
        out_width = conv_output_length(width, kw, sw, self.padding)
        if out_height <= 0 or out_width <= 0:
            raise ValueError(
                f"{self.label}: input shape {tuple(input_shape)} is smaller than "
                f"kernel_size {self.kernel_size} with padding='valid', so the output "
                f"would be empty ({out_height} x {out_width}). Use padding='same' or "
                "an input at least as large as the kernel."
            )
        return batch, out_height, out_width, self.filters

    def padding_amounts(self, input_shape: tuple[int, ...]) -> Pads:
        """Return the zeros ``((top, bottom), (left, right))`` added around the input."""
        output_shape = self.compute_output_shape(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (
            conv_padding(input_shape[1], output_shape[1], kh, sh, self.padding),
            conv_padding(input_shape[2], output_shape[2], kw, sw, self.padding),
        )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        check_input_rank(x.shape, self.label)
        x = self._prepare_input(x)
        kernel = self.params["kernel"]
        check_input_channels(x.shape, kernel.shape[2], self.label)
        output_shape = self.compute_output_shape(x.shape)
        pads = self.padding_amounts(x.shape)

        if self.implementation == "fast":
            z = conv2d_chunked_forward(x, kernel, self.strides, pads, self._workspace)
        else:
            z = conv2d_forward_loop(x, kernel, self.strides, pads)

        if self.use_bias:
            z += self.params["bias"]  # (batch, out_h, out_w, filters)

        self._cache = (x.shape, output_shape, pads, kernel, x)
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

        ``weight_gradients=False`` skips the im2col matrix and the kernel
        product and empties ``self.grads``; ``input_gradient=False`` skips
        dx's product and ``col2im`` and returns None.
        """
        self._require_forward(self._cache)
        input_shape, output_shape, pads, kernel, x = self._cache
        grad_output = self._check_grad_output(grad_output, output_shape)

        dz = grad_output
        if self.activation_layer is not None:
            dz = self.activation_layer.backward(grad_output)

        if not weight_gradients:
            self._discard_weight_gradients()

        dx = None
        if self.implementation == "loop":
            dx, dkernel = conv2d_backward_loop(dz, x, kernel, self.strides, pads)
        elif weight_gradients:
            # The im2col matrix is rebuilt here, not kept from forward: with a
            # 4x4 kernel and strides 2 it is 4 times the size of x, and one copy
            # costs little next to the products.
            dkernel = conv2d_chunked_kernel_gradient(
                x, dz, kernel.shape, self.strides, pads, self._workspace
            )
        if self.implementation == "fast" and input_gradient:
            # After dkernel, because dx's window gradients overwrite the workspace.
            dx = conv2d_input_gradient(
                dz, kernel, input_shape, self.strides, pads, self._workspace
            )

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
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "implementation": self.implementation,
        }
