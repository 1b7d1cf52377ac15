"""The exercise manifest: which regions make up an exercise and which tests grade it.

The manifest is ``scratch/exercises.toml``. Each exercise is one table::

    [exercises.dense_backward]
    title = "Dense backward pass"
    files = ["scratch/layers/dense.py"]
    tests = ["tests/test_dense.py::test_dense_matches_keras"]
    keyword = "not leaky_relu"     # optional: a pytest -k expression applied within `tests`
    points = 2                     # optional, default 1
    requires = ["dense_forward"]   # optional: exercises whose code these tests also run

``tests`` lists pytest node ids relative to the project root: a file, a
function, a class, or one parametrised case. A test belongs to the exercise
when its node id equals an entry or starts with the entry followed by ``::``
or ``[``, and (with ``keyword``) when the keyword expression matches it the
way ``pytest -k`` would. An entry with ``*`` after its ``::`` is a wildcard
pattern for whole node ids: ``*`` matches any run of characters, and ``[``
and ``]`` are plain characters, so
``tests/test_losses.py::test_bce_matches_keras[*-True-*]`` selects the
parametrised cases with ``True`` among their ids.

``requires`` names the exercises whose code the tests also run (a backward
test runs the forward pass first). It changes no score: the grade report
only points out a failing requirement next to the exercise that needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from keras_impl.exercises.markers import (
    EXERCISE_ID_PATTERN,
    ExerciseError,
    Region,
    parse_regions,
    read_source,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PACKAGE = "scratch"
MANIFEST_PATH = "scratch/exercises.toml"

_ALLOWED_KEYS = {"title", "files", "tests", "keyword", "points", "requires"}
_EXERCISE_ID = re.compile(EXERCISE_ID_PATTERN)


@dataclass(frozen=True)
class Exercise:
    """One exercise of the manifest."""

    exercise_id: str
    title: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    keyword: str | None = None
    points: float = 1.0
    requires: tuple[str, ...] = ()

    def test_files(self) -> list[str]:
        """The test files named in ``tests``, in order, without duplicates."""
        files = [entry.split("::", 1)[0] for entry in self.tests]
        return list(dict.fromkeys(files))


def _string_list(value: object, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ExerciseError(f"{where}: '{key}' must be a non-empty list of strings, got {value!r}.")
    for entry in value:
        if entry.startswith("/") or "\\" in entry:
            raise ExerciseError(
                f"{where}: '{key}' entry {entry!r} must be a path relative to the project "
                "root, with forward slashes."
            )
        if "*" in entry.split("::", 1)[0]:
            raise ExerciseError(
                f"{where}: '{key}' entry {entry!r} has a '*' in its file path; name the "
                "file exactly and put wildcards after '::'."
            )
    return tuple(value)


def _requires(value: object, exercise_id: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ExerciseError(f"{where}: 'requires' must be a list of exercise ids, got {value!r}.")
    if exercise_id in value:
        raise ExerciseError(f"{where}: an exercise cannot require itself.")
    return tuple(value)


def parse_manifest(text: str, where: str = MANIFEST_PATH) -> dict[str, Exercise]:
    """Parse manifest TOML text into exercises, keyed by id in file order.

    Raises:
        ExerciseError: for invalid TOML, an unknown key, a bad id or a value
            of the wrong type.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExerciseError(f"{where}: invalid TOML ({error}).") from error

    unknown_tables = set(data) - {"exercises"}
    if unknown_tables:
        raise ExerciseError(
            f"{where}: unknown top-level keys {sorted(unknown_tables)}; "
            "only [exercises.<id>] tables are allowed."
        )
    tables = data.get("exercises", {})
    if not isinstance(tables, dict):
        raise ExerciseError(f"{where}: 'exercises' must be a table of [exercises.<id>] tables.")

    exercises: dict[str, Exercise] = {}
    for exercise_id, table in tables.items():
        entry = f"{where} [exercises.{exercise_id}]"
        if not _EXERCISE_ID.fullmatch(exercise_id):
            raise ExerciseError(f"{entry}: the id must be snake_case ({EXERCISE_ID_PATTERN}).")
        if not isinstance(table, dict):
            raise ExerciseError(f"{entry}: expected a table, got {table!r}.")
        unknown = set(table) - _ALLOWED_KEYS
        if unknown:
            raise ExerciseError(
                f"{entry}: unknown keys {sorted(unknown)}; allowed keys are "
                f"{sorted(_ALLOWED_KEYS)}."
            )
        for required in ("files", "tests"):
            if required not in table:
                raise ExerciseError(f"{entry}: missing '{required}'.")

        title = table.get("title", exercise_id)
        keyword = table.get("keyword")
        points = table.get("points", 1)
        if not isinstance(title, str) or not title.strip():
            raise ExerciseError(f"{entry}: 'title' must be a non-empty string, got {title!r}.")
        if keyword is not None and (not isinstance(keyword, str) or not keyword.strip()):
            raise ExerciseError(f"{entry}: 'keyword' must be a non-empty string, got {keyword!r}.")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
            raise ExerciseError(f"{entry}: 'points' must be a positive number, got {points!r}.")

        exercises[exercise_id] = Exercise(
            exercise_id=exercise_id,
            title=title,
            files=_string_list(table["files"], "files", entry),
            tests=_string_list(table["tests"], "tests", entry),
            keyword=keyword,
            points=float(points),
            requires=_requires(table.get("requires", []), exercise_id, entry),
        )
    if not exercises:
        raise ExerciseError(f"{where}: no exercises; add at least one [exercises.<id>] table.")
    for exercise in exercises.values():
        unknown = [other for other in exercise.requires if other not in exercises]
        if unknown:
            raise ExerciseError(
                f"{where} [exercises.{exercise.exercise_id}]: 'requires' names unknown "
                f"exercises {unknown}."
            )
    return exercises


def load_manifest(source_root: Path) -> dict[str, Exercise]:
    """Read and parse ``scratch/exercises.toml`` under ``source_root``."""
    path = Path(source_root) / MANIFEST_PATH
    if not path.is_file():
        raise ExerciseError(
            f"{path}: exercise manifest not found; is {source_root} the project's source tree?"
        )
    return parse_manifest(path.read_text(encoding="utf-8"), where=MANIFEST_PATH)


def scan_regions(source_root: Path) -> dict[str, list[Region]]:
    """Return the solution regions of every ``scratch/**/*.py`` file that has any.

    Keys are paths relative to ``source_root`` with forward slashes, sorted.
    """
    source_root = Path(source_root)
    package_dir = source_root / PACKAGE
    if not package_dir.is_dir():
        raise ExerciseError(f"{package_dir}: the '{PACKAGE}' package is missing.")
    found: dict[str, list[Region]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source_root).as_posix()
        regions = parse_regions(read_source(path, relative), relative)
        if regions:
            found[relative] = regions
    return found


def check_project(source_root: Path) -> tuple[dict[str, Exercise], dict[str, list[Region]]]:
    """Load the manifest and the regions and check that they agree.

    Every region's id must be in the manifest and its file listed in that
    exercise's ``files``. Every manifest exercise must have a region in each
    listed file, and each test file it names must exist.

    Raises:
        ExerciseError: naming the file and line (or manifest entry) to fix.
    """
    source_root = Path(source_root)
    exercises = load_manifest(source_root)
    regions = scan_regions(source_root)

    seen: dict[str, set[str]] = {exercise_id: set() for exercise_id in exercises}
    for path, file_regions in regions.items():
        for region in file_regions:
            exercise = exercises.get(region.exercise_id)
            if exercise is None:
                raise ExerciseError(
                    f"{region.location}: exercise id '{region.exercise_id}' is not in "
                    f"{MANIFEST_PATH}; add an [exercises.{region.exercise_id}] table "
                    "or fix the id."
                )
            if path not in exercise.files:
                raise ExerciseError(
                    f"{region.location}: exercise '{region.exercise_id}' has a region here "
                    f"but {MANIFEST_PATH} lists its files as {list(exercise.files)}."
                )
            seen[region.exercise_id].add(path)

    for exercise_id, exercise in exercises.items():
        missing = [path for path in exercise.files if path not in seen[exercise_id]]
        if missing:
            raise ExerciseError(
                f"{MANIFEST_PATH} [exercises.{exercise_id}]: no '# EXERCISE {exercise_id}' "
                f"region found in {missing}."
            )
        for test_file in exercise.test_files():
            if not (source_root / test_file).is_file():
                raise ExerciseError(
                    f"{MANIFEST_PATH} [exercises.{exercise_id}]: test file {test_file} "
                    f"not found in {source_root}."
                )
    return exercises, regions
