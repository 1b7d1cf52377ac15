"""Checkpoint files: round trip, atomic writes, bad files, and weight loading by name."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from keras_impl import checkpoints
from keras_impl.checkpoints import CheckpointError
from scratch.models import build_generator


def example_weights() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "generator": {
            "g_project/kernel": rng.standard_normal((3, 4)).astype(np.float32),
            "g_bn0/moving_mean": rng.standard_normal(4),
        },
        "discriminator": {"d_logits/bias": np.zeros(1, dtype=np.float32)},
    }


def example_state() -> dict:
    rng = np.random.default_rng(1)
    return {
        "scratch": {
            "d_optimizer": {
                "iterations": np.asarray(7, dtype=np.int64),
                "momentum/d_logits/bias": rng.standard_normal(1),
            },
            "rng": {"noise": np.random.default_rng(5).bit_generator.state},
            "layers": [np.arange(3), {"nested": np.ones((2, 2), dtype=np.float32)}],
            "flag": True,
            "nothing": None,
        }
    }


def save_example(path: Path, **metadata: object) -> Path:
    return checkpoints.save_checkpoint(
        path, example_weights(), example_state(), {"backend": "scratch", "step": 3, **metadata}
    )


def test_round_trip_exact(tmp_path: Path) -> None:
    path = save_example(tmp_path / "checkpoint.npz")

    loaded = checkpoints.load_checkpoint(path)

    for network, weights in example_weights().items():
        assert sorted(loaded.weights[network]) == sorted(weights)
        for name, value in weights.items():
            assert loaded.weights[network][name].dtype == value.dtype, name
            np.testing.assert_array_equal(loaded.weights[network][name], value, err_msg=name)
    state = loaded.training_state["scratch"]
    expected = example_state()["scratch"]
    np.testing.assert_array_equal(state["d_optimizer"]["iterations"], 7)
    np.testing.assert_array_equal(
        state["d_optimizer"]["momentum/d_logits/bias"],
        expected["d_optimizer"]["momentum/d_logits/bias"],
    )
    assert state["rng"]["noise"] == expected["rng"]["noise"]
    np.testing.assert_array_equal(state["layers"][1]["nested"], np.ones((2, 2)))
    assert state["flag"] is True
    assert state["nothing"] is None
    assert loaded.metadata["step"] == 3
    assert loaded.metadata["backend"] == "scratch"


def test_rng_state_restores_stream(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    rng.standard_normal(5)
    path = checkpoints.save_checkpoint(
        tmp_path / "c.npz", example_weights(), {"rng": rng.bit_generator.state}, {}
    )
    expected = rng.standard_normal(4)

    restored = np.random.default_rng()
    restored.bit_generator.state = checkpoints.load_checkpoint(path).training_state["rng"]

    np.testing.assert_array_equal(restored.standard_normal(4), expected)


def test_path_without_npz_suffix_kept(tmp_path: Path) -> None:
    path = save_example(tmp_path / "latest")

    assert path.exists()
    assert not (tmp_path / "latest.npz").exists()


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_example(tmp_path / "checkpoint.npz")
    save_example(tmp_path / "checkpoint.npz", step=4)

    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]
    assert checkpoints.load_checkpoint(tmp_path / "checkpoint.npz").metadata["step"] == 4


def test_saved_file_mode_follows_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = save_example(tmp_path / "checkpoint.npz")
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_save_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_example(tmp_path / "checkpoint.npz")
    previous = path.read_bytes()

    def write_half_then_fail(handle, **arrays) -> None:
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.np, "savez", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_example(path, step=99)

    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_state_with_unsupported_object_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="contains a set"):
        checkpoints.save_checkpoint(tmp_path / "c.npz", example_weights(), {"bad": {1, 2}}, {})


# ---------------------------------------------------------------------- #
# Bad files
# ---------------------------------------------------------------------- #
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.npz"

    with pytest.raises(FileNotFoundError, match=re.escape(f"{path}: checkpoint not found")):
        checkpoints.load_checkpoint(path)


@pytest.mark.parametrize("keep_fraction", [0.2, 0.6, 0.95])
def test_truncated_file(tmp_path: Path, keep_fraction: float) -> None:
    path = save_example(tmp_path / "checkpoint.npz")
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep_fraction)])

    with pytest.raises(CheckpointError, match="truncated or corrupt") as raised:
        checkpoints.load_checkpoint(path)

    assert str(path) in str(raised.value)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_text("not a checkpoint")

    with pytest.raises(CheckpointError) as raised:
        checkpoints.load_checkpoint(path)

    assert str(path) in str(raised.value)


def test_pickle_inside_rejected(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = {"code": "would run on unpickling"}
    np.savez(path, metadata=np.array("{}"), **{"generator/x/kernel": payload})

    with pytest.raises(CheckpointError, match="pickled objects") as raised:
        checkpoints.load_checkpoint(path)
    assert "allow_pickle" not in str(raised.value)


def test_run_folder_loads_its_checkpoint(tmp_path: Path) -> None:
    save_example(tmp_path / "checkpoint.npz")

    loaded = checkpoints.load_checkpoint(tmp_path)

    assert loaded.metadata["step"] == 3


def test_missing_metadata(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    np.savez(path, **{"generator/x/kernel": np.zeros(2)})

    with pytest.raises(CheckpointError, match="not an mnistgen checkpoint"):
        checkpoints.load_checkpoint(path)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("{not json", "metadata is not valid JSON"),
        (json.dumps({"format_version": 99}), "format version 99"),
        (json.dumps({"format_version": checkpoints.FORMAT_VERSION}), "no generator weights"),
    ],
)
def test_bad_metadata(tmp_path: Path, metadata: str, expected: str) -> None:
    path = tmp_path / "checkpoint.npz"
    np.savez(path, metadata=np.array(metadata))

    with pytest.raises(CheckpointError, match=expected):
        checkpoints.load_checkpoint(path)


def test_state_refers_to_missing_array(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    document = {
        "format_version": checkpoints.FORMAT_VERSION,
        "training_state": {"m": {"__array__": "state/00042"}},
    }
    np.savez(
        path,
        metadata=np.array(json.dumps(document)),
        **{"generator/g/kernel": np.zeros(1), "discriminator/d/kernel": np.zeros(1)},
    )

    with pytest.raises(CheckpointError, match="missing array 'state/00042'"):
        checkpoints.load_checkpoint(path)


# ---------------------------------------------------------------------- #
# Loading weights into models by name
# ---------------------------------------------------------------------- #
def test_scratch_weights_round_trip() -> None:
    source = build_generator("dcgan", 8, "float32", seed=1)
    target = build_generator("dcgan", 8, "float32", seed=2)

    checkpoints.set_scratch_weights(target, checkpoints.scratch_weights(source), "generator")

    for key, value in checkpoints.scratch_weights(source).items():
        np.testing.assert_array_equal(checkpoints.scratch_weights(target)[key], value, err_msg=key)


def test_scratch_weights_wrong_preset_named() -> None:
    weights = checkpoints.scratch_weights(build_generator("tf-tutorial", 8, "float32", seed=1))
    target = build_generator("dcgan", 8, "float32", seed=2)

    with pytest.raises(CheckpointError, match=r"generator weights do not match.*g_up2/kernel"):
        checkpoints.set_scratch_weights(target, weights, "generator", "ckpt.npz")


def test_keras_weights_shape_mismatch_named() -> None:
    from keras_impl.models import build_generator as build_keras_generator

    weights = checkpoints.scratch_weights(build_generator("dcgan", 8, "float32", seed=1))
    target = build_keras_generator("dcgan", 9, "float32", seed=2)

    with pytest.raises(CheckpointError, match=r"g_project/kernel has shape \(8, 6272\)"):
        checkpoints.set_keras_weights(target, weights, "generator", "ckpt.npz")


def test_keras_weights_dtype_mismatch_named() -> None:
    from keras_impl.models import build_generator as build_keras_generator

    weights = checkpoints.scratch_weights(build_generator("dcgan", 8, "float64", seed=1))
    target = build_keras_generator("dcgan", 8, "float32", seed=2)

    with pytest.raises(CheckpointError, match="dtype float64; the model's is float32"):
        checkpoints.set_keras_weights(target, weights, "generator", "ckpt.npz")
