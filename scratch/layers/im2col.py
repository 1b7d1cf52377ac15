"""Padding, im2col and col2im: the array work behind both fast convolutions.

``im2col`` turns every kernel-sized window of a padded NHWC input into one
row of a matrix, so a convolution becomes one matrix product. ``col2im`` is
its adjoint: it adds each row back onto the window it came from.
``batch_chunks`` splits a batch so that each chunk's window matrix stays in
the processor's cache between the product and ``col2im``.
"""

from __future__ import annotations

import numpy as np

from scratch.layers.conv_utils import Pads


def pad_spatial(x: np.ndarray, pads: Pads) -> np.ndarray:
    """Return ``x`` with zeros around height and width, or ``x`` itself if ``pads`` are 0."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    batch, height, width, channels = x.shape
    padded = np.zeros((batch, top + height + bottom, left + width + right, channels), dtype=x.dtype)
    padded[:, top : top + height, left : left + width, :] = x
    return padded


def crop_spatial(x_padded: np.ndarray, pads: Pads) -> np.ndarray:
    """Undo ``pad_spatial``: return the inner view of ``x_padded``."""
    (top, bottom), (left, right) = pads
    _, height, width, _ = x_padded.shape
    return x_padded[:, top : height - bottom, left : width - right, :]


def windowed_output_size(
    padded_shape: tuple[int, ...], kernel_size: tuple[int, int], strides: tuple[int, int]
) -> tuple[int, int]:
    """Return ``(out_height, out_width)`` of a 'valid' convolution of a padded input."""
    (kh, kw), (sh, sw) = kernel_size, strides
    return (padded_shape[1] - kh) // sh + 1, (padded_shape[2] - kw) // sw + 1


def im2col(
    x_padded: np.ndarray,
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Return the matrix whose rows are the kernel windows of ``x_padded``.

    Row ``(b, i, j)`` (flattened in that order) contains the window whose top-left
    corner is ``x_padded[b, i * sh, j * sw]``, flattened as ``(kh, kw, channels)``,
    which is the order of ``kernel.reshape(kh * kw * channels, filters)``.

    Args:
        x_padded: ``(batch, padded_height, padded_width, channels)``.
        kernel_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        out: optional C-contiguous buffer of the result's shape and dtype to
            write into (see ``Workspace``); a new array when None.

    Returns:
        A C-contiguous ``(batch * out_height * out_width, kh * kw * channels)``
        array of ``x_padded``'s dtype (``out`` when given). Building it is the
        only copy: the windows are a strided view first.
    """
    (kh, kw), (sh, sw) = kernel_size, strides
    batch, _, _, channels = x_padded.shape
    out_height, out_width = windowed_output_size(x_padded.shape, kernel_size, strides)

    windows = np.lib.stride_tricks.sliding_window_view(x_padded, (kh, kw), axis=(1, 2))
    windows = windows[:, : (out_height - 1) * sh + 1 : sh, : (out_width - 1) * sw + 1 : sw]
    windows = windows.transpose(0, 1, 2, 4, 5, 3)  # (batch, out_h, out_w, kh, kw, channels)

    if out is None:
        return np.ascontiguousarray(windows).reshape(
            batch * out_height * out_width, kh * kw * channels
        )
    # reshape of a C-contiguous out is a view, so copyto fills out itself.
    np.copyto(out.reshape(windows.shape), windows)
    return out


class Workspace:
    """One scratch buffer that the convolution layers reuse instead of allocating anew.

    The im2col matrix and its gradient are the largest temporaries of a
    convolution (51 MB each for Conv2D(128, 4, 2) on a (256, 14, 14, 64)
    float32 batch). glibc's malloc gives arrays above its mmap threshold
    (at most 32 MiB by default) fresh pages on every allocation, and the
    first write to each page adds roughly half the cost of a copy
    (measured on the machine in docs/benchmarks.md). ``get`` returns a view
    of one flat buffer that only grows, so every layer sharing the
    workspace reuses the same memory.

    NOTE: a buffer from ``get`` is overwritten by the next request, from any
    layer sharing the workspace, so it must never leave the function that
    asked for it, nor be used by two threads at once.
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0, dtype=np.uint8)

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Return an uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self._buffer.size < nbytes:
            self._buffer = np.empty(nbytes, dtype=np.uint8)
        return self._buffer[:nbytes].view(dtype).reshape(shape)


SHARED_WORKSPACE = Workspace()
"""The workspace of every Conv2D and Conv2DTranspose layer, as they run one at a time."""


def col2im(
    columns: np.ndarray,
    padded_shape: tuple[int, int, int, int],
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Add every row of ``columns`` back onto its window (the adjoint of ``im2col``).

    Overlapping windows (kernel larger than the stride) sum their
    contributions. The loop runs over the ``kh * kw`` kernel offsets only.
    Each step adds one strided slab of the whole batch at once.

    Args:
        columns: ``(batch * out_height * out_width, kh * kw * channels)``.
        padded_shape: ``(batch, padded_height, padded_width, channels)`` of the result.
        kernel_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        out: optional array of ``padded_shape`` that the windows are added
            onto; it must hold zeros for the result to be col2im itself.

    Returns:
        ``out``, or a new array of ``padded_shape`` and ``columns``'s dtype.
    """
    (kh, kw), (sh, sw) = kernel_size, strides
    batch, _, _, channels = padded_shape
    out_height, out_width = windowed_output_size(padded_shape, kernel_size, strides)
    columns = columns.reshape(batch, out_height, out_width, kh, kw, channels)

    x_padded = np.zeros(padded_shape, dtype=columns.dtype) if out is None else out
    row_span = (out_height - 1) * sh + 1
    col_span = (out_width - 1) * sw + 1
    for di in range(kh):
        for dj in range(kw):
            x_padded[:, di : di + row_span : sh, dj : dj + col_span : sw, :] += columns[
                :, :, :, di, dj, :
            ]
    return x_padded


CHUNK_BYTES = 4 * 2**20
"""Target size of one batch chunk's window matrix in ``batch_chunks``."""


def batch_chunks(batch: int, bytes_per_sample: int) -> list[slice]:
    """Split ``range(batch)`` into slices whose window matrices take about ``CHUNK_BYTES``.

    A window matrix that fits in the processor's cache is still there when
    the next pass (``col2im``) reads it back, instead of going through main
    memory twice.

    NOTE: 4 MiB was the fastest of 8 to 64 samples of D's second
    convolution at batch size 256 on the 2-core machine in
    docs/benchmarks.md (2 MiB L2 per core, 32 MiB shared L3). Other
    processors may prefer another size.
    """
    size = max(1, CHUNK_BYTES // max(bytes_per_sample, 1))
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]
