"""Training checkpoints in one backend-neutral ``.npz`` file.

Layout of a checkpoint (read with ``allow_pickle=False``):

- ``generator/<layer>/<weight>`` and ``discriminator/<layer>/<weight>``:
  every weight of both networks, trainable or not, under its Keras layer and
  weight names (``generator/g_up1/kernel``, ``discriminator/d_bn2/moving_mean``).
  Both backends use the same names, so either can load the networks that the
  other saved.
- ``state/<index>``: the arrays of the backend's own training state
  (optimiser slots); the JSON below records where each one belongs.
- ``metadata``: a 0-d string array with JSON: the run's configuration
  (backend, preset, dtype, seed, ...), the progress (epoch, step), and the
  backend's training state with every array replaced by
  ``{"__array__": "state/<index>"}``.

Files are written to a temporary name in the same directory and moved into
place with ``os.replace``, so a crash while saving leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_impl.outputs import atomic_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
NETWORKS = ("generator", "discriminator")
METADATA_KEY = "metadata"
STATE_PREFIX = "state/"
ARRAY_MARKER = "__array__"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not match the run; the message names the file."""


@dataclass
class Checkpoint:
    """The content of a checkpoint file: network weights, training state and metadata."""

    weights: dict[str, dict[str, np.ndarray]]  # network -> {"layer/weight": array}
    training_state: Any
    metadata: dict[str, Any]
    path: Path | None = None


# ---------------------------------------------------------------------- #
# Nested training state <-> JSON plus arrays
# ---------------------------------------------------------------------- #
def _split_arrays(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Return ``value`` with every array replaced by a marker; the arrays go into ``arrays``."""
    if isinstance(value, np.ndarray):
        key = f"{STATE_PREFIX}{len(arrays):05d}"
        arrays[key] = value
        return {ARRAY_MARKER: key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"checkpoint state keys must be strings, received {key!r}")
        return {key: _split_arrays(item, arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(item, arrays) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"checkpoint state contains a {type(value).__name__}; expected arrays, numbers, "
        "strings, lists and dictionaries"
    )


def _join_arrays(value: Any, arrays: dict[str, np.ndarray], path: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {ARRAY_MARKER}:
            key = value[ARRAY_MARKER]
            if key not in arrays:
                raise CheckpointError(f"{path}: training state refers to missing array {key!r}")
            return arrays[key]
        return {key: _join_arrays(item, arrays, path) for key, item in value.items()}
    if isinstance(value, list):
        return [_join_arrays(item, arrays, path) for item in value]
    return value


# ---------------------------------------------------------------------- #
# Saving and loading
# ---------------------------------------------------------------------- #
def save_checkpoint(
    path: str | Path,
    weights: dict[str, dict[str, np.ndarray]],
    training_state: Any,
    metadata: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        weights: ``{"generator": {"layer/weight": array}, "discriminator": {...}}``.
        training_state: the backend's state (nested dicts and lists of arrays,
            numbers and strings), restored as is by ``load_checkpoint``.
        metadata: JSON-serialisable run configuration and progress.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for network in NETWORKS:
        if network not in weights:
            raise ValueError(f"save_checkpoint: weights for {network!r} are missing")
        for name, value in weights[network].items():
            arrays[f"{network}/{name}"] = np.asarray(value)
    state_arrays: dict[str, np.ndarray] = {}
    state_json = _split_arrays(training_state, state_arrays)
    arrays.update(state_arrays)
    document = {"format_version": FORMAT_VERSION, **metadata, "training_state": state_json}
    arrays[METADATA_KEY] = np.array(json.dumps(document))

    with atomic_path(path) as temporary:
        # A file object, because np.savez adds ".npz" to a path that lacks it.
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
    logger.debug("Saved checkpoint %s (%d arrays)", path, len(arrays))
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: if the file is not a readable checkpoint of this format.
    """
    path = Path(path)
    if path.is_dir():
        # A run folder (the --out of `mnistgen train`) contains its checkpoint.
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        # NumPy's own message suggests allow_pickle=True, which is never used
        # here, so it is left out.
        raise CheckpointError(
            f"{path}: not an npz checkpoint, or it contains pickled objects, "
            "which mnistgen never loads"
        ) from error
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt ({error})") from error

    if METADATA_KEY not in arrays:
        raise CheckpointError(f"{path}: no '{METADATA_KEY}' entry; not an mnistgen checkpoint")
    try:
        document = json.loads(str(arrays.pop(METADATA_KEY)))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({error})") from error
    version = document.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version}; this version of mnistgen "
            f"reads version {FORMAT_VERSION}"
        )

    weights: dict[str, dict[str, np.ndarray]] = {network: {} for network in NETWORKS}
    for key, value in arrays.items():
        network, _, name = key.partition("/")
        if network in weights:
            weights[network][name] = value
    for network in NETWORKS:
        if not weights[network]:
            raise CheckpointError(f"{path}: no {network} weights")
    training_state = _join_arrays(document.pop("training_state", None), arrays, path)
    return Checkpoint(weights, training_state, document, path)


# ---------------------------------------------------------------------- #
# Network weights by name, for either backend
# ---------------------------------------------------------------------- #
def scratch_weights(model: Any) -> dict[str, np.ndarray]:
    """Return a scratch ``Sequential``'s weights as ``{"layer/weight": copy}``."""
    return {key: value.copy() for key, value in {**model.params, **model.state}.items()}


def keras_weights(model: Any) -> dict[str, np.ndarray]:
    """Return a Keras model's weights as ``{"layer/weight": array}``."""
    return {
        f"{layer.name}/{variable.name}": np.array(variable.numpy())
        for layer in model.layers
        for variable in layer.weights
    }


def check_same_names(expected: set[str], received: set[str], network: str, path: object) -> None:
    """Raise CheckpointError listing missing and unexpected weight names."""
    if expected != received:
        missing = sorted(expected - received)
        unexpected = sorted(received - expected)
        raise CheckpointError(
            f"{path}: {network} weights do not match the model built from the checkpoint's "
            f"preset (missing {missing}, unexpected {unexpected})"
        )


def set_scratch_weights(
    model: Any, weights: dict[str, np.ndarray], network: str, path: object = "checkpoint"
) -> None:
    """Copy ``{"layer/weight": array}`` into a scratch ``Sequential``, checking names."""
    check_same_names(set(model.params) | set(model.state), set(weights), network, path)
    model.assign(weights)


def set_keras_weights(
    model: Any, weights: dict[str, np.ndarray], network: str, path: object = "checkpoint"
) -> None:
    """Copy ``{"layer/weight": array}`` into a Keras model, checking names, shapes and dtypes."""
    variables = {
        f"{layer.name}/{variable.name}": variable
        for layer in model.layers
        for variable in layer.weights
    }
    check_same_names(set(variables), set(weights), network, path)
    for key, variable in variables.items():
        value = weights[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{path}: {network} weight {key} has shape {value.shape}; the model's is "
                f"{tuple(variable.shape)}"
            )
        if np.dtype(value.dtype) != np.dtype(variable.dtype):
            raise CheckpointError(
                f"{path}: {network} weight {key} has dtype {value.dtype}; the model's is "
                f"{variable.dtype}"
            )
        variable.assign(value)
