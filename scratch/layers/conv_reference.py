"""Readable loop versions of the 2-D convolution and transposed convolution.

These functions spell out every sum with explicit loops over output pixels
and kernel offsets, one small matrix product over channels at a time. They
are slow and exist to be read and to test the fast versions in ``conv2d.py``
and ``conv2d_transpose.py`` against. A layer runs them when built with
``implementation="loop"``.

Notation (NHWC, one spatial axis written out; the other is the same):

    x_pad      the input with ``pads`` zeros around height and width
    y[b, i, j, f] = sum over di, dj, c of
                    x_pad[b, i * sh + di, j * sw + dj, c] * kernel[di, dj, c, f]

A transposed convolution runs the same index map the other way: input pixel
``(i, j)`` adds ``x[b, i, j, :] @ kernel[di, dj].T`` onto output pixel
``(i * sh + di, j * sw + dj)`` of a padded output, which is then cropped.
"""

from __future__ import annotations

import numpy as np

from scratch.layers.conv_utils import Pads
from scratch.layers.im2col import crop_spatial, pad_spatial, windowed_output_size


def conv2d_forward_loop(
    x: np.ndarray, kernel: np.ndarray, strides: tuple[int, int], pads: Pads
) -> np.ndarray:
    """Convolve (cross-correlate) ``x`` with ``kernel``, one output pixel at a time.

    Args:
        x: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, filters)``.
        strides: ``(sh, sw)``.
        pads: zeros added ``((top, bottom), (left, right))`` before convolving.

    Returns:
        ``(batch, out_height, out_width, filters)``, without bias.
    """
    kh, kw, _, filters = kernel.shape
    sh, sw = strides
    x_pad = pad_spatial(x, pads)  # (batch, top + H + bottom, left + W + right, in)
    out_height, out_width = windowed_output_size(x_pad.shape, (kh, kw), strides)

    # EXERCISE conv2d_loop: loop over output pixels, kernel offsets; window starts at (i*sh, j*sw).
    # BEGIN SOLUTION
    y = np.zeros((x.shape[0], out_height, out_width, filters), dtype=x.dtype)
    for i in range(out_height):
        for j in range(out_width):
            for di in range(kh):
                for dj in range(kw):
                    pixel = x_pad[:, i * sh + di, j * sw + dj, :]  # (batch, in)
                    y[:, i, j, :] += pixel @ kernel[di, dj]  # (batch, filters)
    return y
    # END SOLUTION


def conv2d_backward_loop(
    grad_output: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(dx, dkernel)`` for ``conv2d_forward_loop``, by the same loops.

    Each forward term ``x_pad[...] @ kernel[di, dj]`` sends its gradient back
    to both factors:

        dkernel[di, dj] += x_pad[b, i*sh+di, j*sw+dj, :].T @ dy[b, i, j, :]
        dx_pad[b, i*sh+di, j*sw+dj, :] += dy[b, i, j, :] @ kernel[di, dj].T

    Args:
        grad_output: dL/dy, ``(batch, out_height, out_width, filters)``.
        x, kernel, strides, pads: as in the forward call.
    """
    kh, kw, _, _ = kernel.shape
    sh, sw = strides
    x_pad = pad_spatial(x, pads)
    _, out_height, out_width, _ = grad_output.shape

    # EXERCISE conv2d_loop: redo the forward loops, sending dy to both factors; crop dx_pad last.
    # BEGIN SOLUTION
    dx_pad = np.zeros(x_pad.shape, dtype=x.dtype)
    dkernel = np.zeros(kernel.shape, dtype=kernel.dtype)
    for i in range(out_height):
        for j in range(out_width):
            dy_pixel = grad_output[:, i, j, :]  # (batch, filters)
            for di in range(kh):
                for dj in range(kw):
                    row, col = i * sh + di, j * sw + dj
                    dkernel[di, dj] += x_pad[:, row, col, :].T @ dy_pixel
                    dx_pad[:, row, col, :] += dy_pixel @ kernel[di, dj].T

    dx = crop_spatial(dx_pad, pads)  # (batch, H, W, in)
    return np.ascontiguousarray(dx), dkernel
    # END SOLUTION


def conv2d_transpose_forward_loop(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    output_size: tuple[int, int],
) -> np.ndarray:
    """Spread every input pixel over a kernel-sized patch of the output.

    Args:
        x: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, filters, in_channels)`` (Keras's transposed layout).
        strides: ``(sh, sw)``: input pixels land ``sh`` rows and ``sw`` columns apart.
        pads: ``((top, bottom), (left, right))`` cropped off the painted output.
        output_size: ``(out_height, out_width)`` after cropping.

    Returns:
        ``(batch, out_height, out_width, filters)``, without bias.
    """
    kh, kw, filters, _ = kernel.shape
    sh, sw = strides
    (top, bottom), (left, right) = pads
    batch, height, width, _ = x.shape
    padded_height = output_size[0] + top + bottom
    padded_width = output_size[1] + left + right

    # EXERCISE conv2d_transpose_loop_forward: add each input pixel's patch onto y_pad, then crop.
    # BEGIN SOLUTION
    y_pad = np.zeros((batch, padded_height, padded_width, filters), dtype=x.dtype)
    for i in range(height):
        for j in range(width):
            pixel = x[:, i, j, :]  # (batch, in)
            for di in range(kh):
                for dj in range(kw):
                    y_pad[:, i * sh + di, j * sw + dj, :] += pixel @ kernel[di, dj].T

    y = crop_spatial(y_pad, pads)  # (batch, out_height, out_width, filters)
    return np.ascontiguousarray(y)
    # END SOLUTION


def conv2d_transpose_backward_loop(
    grad_output: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(dx, dkernel)`` for ``conv2d_transpose_forward_loop``.

    Input pixel ``(i, j)`` touched output pixel ``(i*sh+di, j*sw+dj)`` of the
    padded output through ``kernel[di, dj]``, so

        dx[b, i, j, :]  += dy_pad[b, i*sh+di, j*sw+dj, :] @ kernel[di, dj]
        dkernel[di, dj] += dy_pad[b, i*sh+di, j*sw+dj, :].T @ x[b, i, j, :]

    where ``dy_pad`` is dL/dy with zeros where the crop removed pixels.
    """
    kh, kw, _, _ = kernel.shape
    sh, sw = strides
    _, height, width, _ = x.shape
    dy_pad = pad_spatial(grad_output, pads)  # (batch, padded_height, padded_width, filters)

    dx = np.zeros(x.shape, dtype=x.dtype)
    dkernel = np.zeros(kernel.shape, dtype=kernel.dtype)
    for i in range(height):
        for j in range(width):
            for di in range(kh):
                for dj in range(kw):
                    dy_pixel = dy_pad[:, i * sh + di, j * sw + dj, :]  # (batch, filters)
                    dx[:, i, j, :] += dy_pixel @ kernel[di, dj]
                    dkernel[di, dj] += dy_pixel.T @ x[:, i, j, :]
    return dx, dkernel
