"""Write the student's copy of the project, with every solution region stripped."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from keras_impl.exercises.manifest import check_project
from keras_impl.exercises.markers import (
    ExerciseError,
    Region,
    check_syntax,
    read_source,
    strip_regions,
)

logger = logging.getLogger(__name__)

# The project files a student needs to work and run the tests. Everything
# else (.git, virtual environments, caches, runs/, build metadata) stays behind.
STUDENT_COPY_ITEMS = (
    "scratch",
    "tests",
    "keras_impl",
    "lessons",
    "pyproject.toml",
    "README.md",
    ".gitignore",
)

# Names skipped inside the copied folders: caches and generated files. The
# executed notebooks (*.ipynb, built from the lessons' .py sources) may hold
# outputs computed with the solutions.
EXCLUDED_NAMES = (
    ".git",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".ipynb_checkpoints",
    "*.ipynb",
    "*.egg-info",
    ".venv",
    ".ci-venv",
    "runs",
)


@dataclass
class StudentCopy:
    """The result of ``make_student_copy``: the output folder, stripped regions and copied items."""

    out: Path
    stripped_regions: list[Region] = field(default_factory=list)
    copied_items: list[str] = field(default_factory=list)


def _check_destination(source_root: Path, out: Path, force: bool) -> None:
    if out == source_root or out.is_relative_to(source_root):
        raise ExerciseError(
            f"output folder {out} is inside the source tree {source_root}; "
            "choose a folder outside it."
        )
    if source_root.is_relative_to(out):
        raise ExerciseError(
            f"output folder {out} contains the source tree {source_root}; "
            "choose a folder outside it."
        )
    if out.exists() and not out.is_dir():
        raise ExerciseError(f"output path {out} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExerciseError(
            f"output folder {out} is not empty; choose an empty or new folder, or pass "
            "--force to replace the project files in it."
        )


def stripped_sources(
    source_root: Path, exercise_ids: list[str] | None = None
) -> tuple[dict[str, str], list[Region]]:
    """Return the stripped text of every file with a selected region, and those regions.

    Raises:
        ExerciseError: for bad markers, a manifest mismatch, an unknown id in
            ``exercise_ids``, or a file that is no longer valid Python.
    """
    exercises, regions = check_project(source_root)
    selected = set(exercises) if exercise_ids is None else set(exercise_ids)
    unknown = selected - set(exercises)
    if unknown:
        raise ExerciseError(
            f"unknown exercise ids {sorted(unknown)}; the manifest has {list(exercises)}."
        )

    texts: dict[str, str] = {}
    stripped: list[Region] = []
    for path, file_regions in regions.items():
        chosen = [region for region in file_regions if region.exercise_id in selected]
        if not chosen:
            continue
        text = strip_regions(read_source(source_root / path, path), file_regions, selected)
        check_syntax(text, path)
        texts[path] = text
        stripped.extend(chosen)
    return texts, stripped


def make_student_copy(
    source_root: Path,
    out: Path,
    force: bool = False,
    exercise_ids: list[str] | None = None,
) -> StudentCopy:
    """Copy the project to ``out`` with the solution regions replaced by ``raise``.

    Only ``STUDENT_COPY_ITEMS`` are copied, without ``EXCLUDED_NAMES``. Every
    file is byte-for-byte the source's except inside the stripped regions.
    All checks run before anything is written.

    Args:
        source_root: the teacher's project (with ``scratch/exercises.toml``).
        out: the folder to write. It must be new or empty unless ``force``,
            and neither inside nor around ``source_root``.
        force: replace the copied items in a non-empty ``out``; other files
            already in ``out`` are left alone.
        exercise_ids: strip only these exercises (default: all of them).

    Raises:
        ExerciseError: for a refused destination or any marker or manifest error.
    """
    source_root = Path(source_root).resolve()
    out = Path(out).resolve()
    _check_destination(source_root, out, force)
    texts, stripped = stripped_sources(source_root, exercise_ids)

    out.mkdir(parents=True, exist_ok=True)
    result = StudentCopy(out=out, stripped_regions=stripped)
    ignore = shutil.ignore_patterns(*EXCLUDED_NAMES)
    for item in STUDENT_COPY_ITEMS:
        source = source_root / item
        target = out / item
        if not source.exists():
            logger.info("Not copying %s: it does not exist in %s.", item, source_root)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
        result.copied_items.append(item)

    for path, text in texts.items():
        (out / path).write_bytes(text.encode("utf-8"))
    logger.info(
        "Wrote the student copy to %s: %d regions stripped in %d files.",
        out,
        len(stripped),
        len(texts),
    )
    return result
