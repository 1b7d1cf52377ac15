"""Shared pytest set-up: quiet TensorFlow, deterministic Keras, the MNIST test split."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST_DIR = PROJECT_ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def mnist_test_dir() -> Path:
    """The official MNIST test split in ``../shared/data/mnist``; skips when absent."""
    images = SHARED_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip(f"MNIST test split not found at {SHARED_MNIST_DIR} (expected {images.name})")
    return SHARED_MNIST_DIR


@pytest.fixture(params=["float64", "float32"])
def dtype(request: pytest.FixtureRequest) -> str:
    """Run a test once in float64 and once in float32."""
    return request.param
