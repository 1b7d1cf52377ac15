"""Shared pieces of Conv2D and Conv2DTranspose: argument checks, sizes, padding amounts.

Everything here works on NHWC arrays, ``(batch, height, width, channels)``,
the layout Keras uses by default (``data_format="channels_last"``).

Sizes along one spatial axis, for input length ``n``, kernel size ``k`` and
stride ``s`` (TensorFlow's rules, which Keras follows with its TF backend):

- convolution, ``"valid"``: ``out = floor((n - k) / s) + 1``, no padding;
- convolution, ``"same"``: ``out = ceil(n / s)``, padded by
  ``total = max((out - 1) * s + k - n, 0)`` zeros, ``total // 2`` before
  and the rest (one more when ``total`` is odd) after;
- transposed convolution: see ``conv_transpose_output_length``.

The array work (padding, ``im2col``, ``col2im``) is in ``scratch.layers.im2col``.
"""

from __future__ import annotations

from numbers import Integral

Pads = tuple[tuple[int, int], tuple[int, int]]
"""Zeros added ``((top, bottom), (left, right))`` around the spatial axes."""


# ---------------------------------------------------------------------- #
# Argument normalisation and validation (Keras's rules and messages)
# ---------------------------------------------------------------------- #
def normalize_tuple(
    value: int | tuple[int, ...] | list[int],
    argument: str,
    label: str,
    allow_zero: bool = False,
) -> tuple[int, int]:
    """Turn an int or a pair of ints into a pair of Python ints, as Keras does.

    Args:
        value: an int (used for both axes) or a tuple or list of two ints.
        argument: the argument's name for the error message (``"strides"``).
        label: the layer, e.g. ``"Conv2D 'conv2d'"``.
        allow_zero: accept 0 (for ``output_padding``). Otherwise values must be > 0.

    Raises:
        ValueError: for anything but one or two integers, or a value out of range.
    """
    bound = ">= 0" if allow_zero else "> 0"
    message = (
        f"{label}: the `{argument}` argument must be an int or a tuple of 2 ints, "
        f"each {bound}, received {argument}={value!r}."
    )
    if isinstance(value, Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in value):
            raise ValueError(message)
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(message)

    lowest = 0 if allow_zero else 1
    if min(pair) < lowest:
        raise ValueError(message)
    return pair


def normalize_padding(value: str, label: str) -> str:
    """Return ``"valid"`` or ``"same"`` (case-insensitive input), as Keras does.

    Raises:
        ValueError: for any other value, including Keras's explicit padding lists.
    """
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(
            f"{label}: the `padding` argument must be 'valid' or 'same', "
            f"received padding={value!r}."
        )
    return value.lower()


def check_data_format(data_format: str | None, label: str) -> str:
    """Return ``"channels_last"`` and reject every other data format.

    None means Keras's default ``image_data_format()``, which is
    ``"channels_last"`` unless a user changed ``keras.json``.

    Raises:
        ValueError: for a string that is neither Keras data format.
        NotImplementedError: for ``"channels_first"`` (NCHW is not implemented).
    """
    if data_format is None:
        return "channels_last"
    normalized = str(data_format).lower()
    if normalized not in ("channels_first", "channels_last"):
        raise ValueError(
            f"{label}: the `data_format` argument must be 'channels_last' or "
            f"'channels_first', received data_format={data_format!r}."
        )
    if normalized == "channels_first":
        raise NotImplementedError(
            f"{label}: data_format='channels_first' is not implemented because the "
            "scratch layers use NHWC only. Use data_format='channels_last' (or None) and "
            "transpose the input with x.transpose(0, 2, 3, 1)."
        )
    return normalized


def check_dilation_rate(
    dilation_rate: int | tuple[int, int], strides: tuple[int, int], label: str
) -> tuple[int, int]:
    """Validate ``dilation_rate`` like Keras, then reject any value but 1.

    Raises:
        ValueError: for an invalid value, or dilation > 1 with strides > 1 (as Keras).
        NotImplementedError: for a valid dilation other than (1, 1).
    """
    dilation = normalize_tuple(dilation_rate, "dilation_rate", label)
    if max(strides) > 1 and max(dilation) > 1:
        raise ValueError(
            f"{label}: strides > 1 is not supported together with dilation_rate > 1, "
            f"received strides={strides} and dilation_rate={dilation}."
        )
    if dilation != (1, 1):
        raise NotImplementedError(
            f"{label}: dilation_rate={dilation} is not implemented. Use dilation_rate=(1, 1)."
        )
    return dilation


def check_filters(filters: int, label: str) -> int:
    """Return ``filters`` as an int after checking that it is a positive integer.

    Raises:
        ValueError: for zero, a negative number or a non-integer.
    """
    if not isinstance(filters, Integral) or isinstance(filters, bool) or filters <= 0:
        raise ValueError(
            f"{label}: invalid value for argument `filters`, expected a strictly "
            f"positive integer, received filters={filters!r}."
        )
    return int(filters)


def check_input_rank(shape: tuple[int | None, ...], label: str) -> None:
    """Require a 4-D NHWC shape with positive spatial sizes.

    Raises:
        ValueError: naming the layer and the received shape.
    """
    if len(shape) != 4:
        raise ValueError(
            f"{label}: expected a 4-D input (batch, height, width, channels), "
            f"received shape {tuple(shape)} with {len(shape)} dimensions."
        )
    if any(size is None or size <= 0 for size in shape[1:]):
        raise ValueError(
            f"{label}: height, width and channels must be positive integers, "
            f"received input shape {tuple(shape)}."
        )


def check_input_channels(shape: tuple[int | None, ...], expected: int, label: str) -> None:
    """Require the channel axis of ``shape`` to equal the built kernel's ``expected``.

    Raises:
        ValueError: naming the layer, the input shape and both channel counts.
    """
    if shape[-1] != expected:
        raise ValueError(
            f"{label}: input shape {tuple(shape)} has {shape[-1]} channels but "
            f"the kernel expects {expected}."
        )


# ---------------------------------------------------------------------- #
# Output sizes and padding amounts
# ---------------------------------------------------------------------- #
def conv_output_length(input_length: int, kernel_size: int, stride: int, padding: str) -> int:
    """Return a convolution's output length along one axis.

    ``"valid"``: ``floor((n - k) / s) + 1``, ``"same"``: ``ceil(n / s)``.
    A ``"valid"`` result <= 0 (kernel longer than the input) is returned as is,
    and callers turn it into an error.
    """
    if padding == "valid":
        return (input_length - kernel_size) // stride + 1
    return -(-input_length // stride)


def conv_padding(
    input_length: int, output_length: int, kernel_size: int, stride: int, padding: str
) -> tuple[int, int]:
    """Return ``(before, after)``: the zeros TensorFlow adds to one axis.

    ``"valid"`` adds none. ``"same"`` adds
    ``total = max((out - 1) * s + k - n, 0)`` zeros, ``total // 2`` before,
    so the odd one goes after (bottom or right).
    """
    if padding == "valid":
        return 0, 0
    total = max((output_length - 1) * stride + kernel_size - input_length, 0)
    return total // 2, total - total // 2


def conv_transpose_output_length(
    input_length: int,
    kernel_size: int,
    stride: int,
    padding: str,
    output_padding: int | None,
) -> int:
    """Return a transposed convolution's output length along one axis (Keras's rule).

    With ``n`` the input length, ``k`` the kernel size, ``s`` the stride and
    ``p`` the output padding:

    - ``"valid"``, ``p`` None: ``(n - 1) * s + max(k, s)``
    - ``"valid"``: ``(n - 1) * s + k + p``
    - ``"same"``, ``p`` None: ``n * s``
    - ``"same"``: ``(n - 1) * s + k % 2 + p``
    """
    if padding == "valid":
        if output_padding is None:
            output_padding = max(kernel_size, stride) - kernel_size
        return (input_length - 1) * stride + kernel_size + output_padding
    if output_padding is None:
        return input_length * stride
    return (input_length - 1) * stride + kernel_size % 2 + output_padding


def conv_transpose_padding(
    input_length: int, output_length: int, kernel_size: int, stride: int, padding: str
) -> tuple[int, int]:
    """Return ``(before, after)`` for a transposed convolution along one axis.

    A transposed convolution from length ``n`` to length ``m`` is the input
    gradient of the convolution from ``m`` to ``n`` (TensorFlow computes it so).
    That convolution pads ``m`` by ``conv_padding`` (with ``n`` as its output
    length). The transposed one computes the padded length
    ``m + before + after`` and then crops ``before`` and ``after`` away.
    """
    return conv_padding(output_length, input_length, kernel_size, stride, padding)


def check_groups(groups: int, filters: int, label: str) -> int:
    """Validate ``groups`` like Keras, then reject any value but 1.

    Raises:
        ValueError: for a non-positive value or one that does not divide ``filters``.
        NotImplementedError: for a valid ``groups`` other than 1.
    """
    if not isinstance(groups, Integral) or isinstance(groups, bool) or groups <= 0:
        raise ValueError(
            f"{label}: the number of groups must be a positive integer, received groups={groups!r}."
        )
    if filters % groups != 0:
        raise ValueError(
            f"{label}: the number of filters must be evenly divisible by the number "
            f"of groups, received groups={groups}, filters={filters}."
        )
    if groups != 1:
        raise NotImplementedError(
            f"{label}: grouped convolution (groups={groups}) is not implemented. Use groups=1."
        )
    return 1


IMPLEMENTATIONS = ("fast", "loop")


def check_implementation(implementation: str, label: str) -> str:
    """Return ``"fast"`` (im2col and matrix products) or ``"loop"`` (conv_reference.py).

    Raises:
        ValueError: for any other value.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"{label}: implementation must be one of {IMPLEMENTATIONS}, received "
            f"implementation={implementation!r}."
        )
    return implementation
