"""The exercise tool: solution markers, the student copy and grading.

Most tests build a small synthetic project in ``tmp_path`` (a ``scratch``
package with three exercises, its tests and a manifest) so that grading runs
in about a second. The last tests make a student copy of this repository and
grade a few real exercises with the real Keras tests.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import shutil
import time
from pathlib import Path

import pytest

from keras_impl.exercises import (
    ExerciseError,
    GradingError,
    add_exercises_parser,
    check_project,
    grade,
    load_manifest,
    make_student_copy,
    parse_manifest,
    parse_regions,
    run_exercises,
    strip_regions,
)
from keras_impl.exercises.grading import _build_report
from keras_impl.exercises.markers import split_lines
from keras_impl.exercises.student_copy import EXCLUDED_NAMES, STUDENT_COPY_ITEMS

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OPS_PY = '''\
"""Element-wise operations of the synthetic project."""

import numpy as np


def square(x: np.ndarray) -> np.ndarray:
    # EXERCISE square_forward: return x squared, element by element.
    # BEGIN SOLUTION
    return x * x
    # END SOLUTION


def square_backward(x: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
    # EXERCISE square_backward: d(x**2)/dx is 2 * x; multiply by "grad_output".
    # BEGIN SOLUTION
    dx = 2 * x * grad_output

    return dx
    # END SOLUTION


def negate(x: np.ndarray) -> np.ndarray:
    return -x
'''

SCALE_PY = '''\
"""A layer y = factor * x with a trainable scalar factor."""

import numpy as np


class Scale:
    def __init__(self, factor: float) -> None:
        self.factor = np.float64(factor)
        self.dfactor = None
        self._x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        # EXERCISE scale_layer: multiply the input by self.factor.
        # BEGIN SOLUTION
        y = x * self.factor
        # END SOLUTION
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        # EXERCISE scale_layer: dfactor = sum(grad_output * x), dx = grad_output * factor.
        # BEGIN SOLUTION
        self.dfactor = np.sum(grad_output * self._x)
        return grad_output * self.factor
        # END SOLUTION
'''

TEST_OPS_PY = """\
import numpy as np
from helpers import assert_close

from scratch.ops import negate, square, square_backward

X = np.array([-1.5, 0.0, 2.0])


def test_square_forward():
    assert_close("y", square(X), X**2)


def test_square_backward():
    grad_output = np.array([1.0, 2.0, 3.0])
    assert_close("dx", square_backward(X, grad_output), 2 * X * grad_output)


def test_negate():
    assert_close("y", negate(X), -X)
"""

TEST_SCALE_PY = """\
import numpy as np
import pytest
from helpers import assert_close

from scratch.layers.scale import Scale

X = np.array([[1.0, -2.0], [0.5, 3.0]])


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_scale_forward(factor):
    assert_close("y", Scale(factor).forward(X), factor * X)


def test_scale_backward():
    layer = Scale(2.0)
    layer.forward(X)
    grad_output = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert_close("dx", layer.backward(grad_output), 2.0 * grad_output)
    assert_close("dfactor", layer.dfactor, np.sum(grad_output * X))


def test_scale_keeps_factor():
    assert Scale(4.0).factor == 4.0
"""

MANIFEST_TOML = """\
[exercises.square_forward]
title = "Square, forward"
files = ["scratch/ops.py"]
tests = ["tests/test_ops.py::test_square_forward"]

[exercises.square_backward]
title = "Square, backward"
files = ["scratch/ops.py"]
tests = ["tests/test_ops.py"]
keyword = "backward"
points = 2

[exercises.scale_layer]
title = "Scale layer, forward and backward"
files = ["scratch/layers/scale.py"]
tests = ["tests/test_scale.py::test_scale_*ward*"]
"""

# The tests each exercise owns in the synthetic project: exactly these fail
# when that exercise's regions are stripped.
EXERCISE_TESTS = {
    "square_forward": {"tests/test_ops.py::test_square_forward"},
    "square_backward": {"tests/test_ops.py::test_square_backward"},
    "scale_layer": {
        "tests/test_scale.py::test_scale_forward[0.5]",
        "tests/test_scale.py::test_scale_forward[3.0]",
        "tests/test_scale.py::test_scale_backward",
    },
}
OTHER_TESTS = {"tests/test_ops.py::test_negate", "tests/test_scale.py::test_scale_keeps_factor"}


def write_mini_project(root: Path) -> Path:
    """Write the synthetic project under ``root`` and return ``root``."""
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
        "README.md": "# A synthetic project for the exercise tool\n",
        "lessons/intro.md": "Square a number, then scale it.\n",
        "keras_impl/__init__.py": '"""Stands in for the Keras twin."""\n',
        "scratch/__init__.py": '"""The synthetic scratch package."""\n',
        "scratch/ops.py": OPS_PY,
        "scratch/layers/__init__.py": "",
        "scratch/layers/scale.py": SCALE_PY,
        "scratch/exercises.toml": MANIFEST_TOML,
        "tests/test_ops.py": TEST_OPS_PY,
        "tests/test_scale.py": TEST_SCALE_PY,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    shutil.copy2(PROJECT_ROOT / "tests" / "helpers.py", root / "tests" / "helpers.py")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_mini_project(tmp_path / "project")


def failing_tests(report) -> set[str]:
    """Ids of every test that did not pass, exercise tests and other tests alike."""
    tests = [test for result in report.exercises for test in result.tests]
    tests += report.other_tests or []
    return {test.test_id for test in tests if test.outcome != "passed"}


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# --------------------------------------------------------------------------- #
# Markers
# --------------------------------------------------------------------------- #
def test_parse_regions_reads_ids_hints_lines() -> None:
    regions = parse_regions(OPS_PY, "scratch/ops.py")

    assert [region.exercise_id for region in regions] == ["square_forward", "square_backward"]
    assert regions[0].hint == "return x squared, element by element."
    assert (regions[0].begin_line, regions[0].end_line) == (8, 10)
    assert (regions[1].begin_line, regions[1].end_line) == (15, 19)
    assert regions[0].indent == "    "
    assert regions[0].location == "scratch/ops.py:7"


def test_strip_regions_keeps_indent_and_hint() -> None:
    regions = parse_regions(SCALE_PY, "scratch/layers/scale.py")
    stripped = strip_regions(SCALE_PY, regions)

    raises = [line for line in stripped.splitlines() if "NotImplementedError" in line]
    assert raises == [
        '        raise NotImplementedError("multiply the input by self.factor.")',
        "        raise NotImplementedError("
        '"dfactor = sum(grad_output * x), dx = grad_output * factor.")',
    ]
    ast.parse(stripped)


def test_strip_regions_escapes_quotes_in_hint() -> None:
    regions = parse_regions(OPS_PY, "scratch/ops.py")
    stripped = strip_regions(OPS_PY, regions, selected={"square_backward"})

    raise_line = next(line for line in stripped.splitlines() if "NotImplementedError" in line)
    call = ast.parse(raise_line.strip()).body[0].exc
    assert ast.literal_eval(call.args[0]) == regions[1].hint
    assert "return x * x" in stripped, "square_forward was not selected and must stay"


def test_strip_regions_keeps_crlf_line_endings() -> None:
    source = OPS_PY.replace("\n", "\r\n")
    stripped = strip_regions(source, parse_regions(source, "scratch/ops.py"))

    assert "\n" not in stripped.replace("\r\n", "")
    assert stripped.count("\r\n") == source.count("\r\n") - 2 - 4


def test_split_lines_ignores_form_feeds() -> None:
    text = "a = 1\n\x0c\nb = 2"
    assert split_lines(text) == ["a = 1\n", "\x0c\n", "b = 2"]
    assert "".join(split_lines(text)) == text


BAD_MARKERS = {
    "never closed": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n    return 1\n",
        "x.py:3",
        "never closed",
    ),
    "end without begin": ("def f():\n    return 1\n    # END SOLUTION\n", "x.py:3", "without"),
    "nested": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n"
        "    return 1\n    # END SOLUTION\n",
        "x.py:4",
        "nested",
    ),
    "no id": (
        "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
        "x.py:2",
        "without an id",
    ),
    "exercise line not followed by begin": (
        "def f():\n    # EXERCISE f: h.\n    return 1\n",
        "x.py:2",
        "must be followed directly",
    ),
    "exercise line at end of file": ("def f():\n    pass\n    # EXERCISE f: h.\n", "x.py:3", ""),
    "malformed exercise line": (
        "def f():\n    # EXERCISE Bad-Id: h.\n    # BEGIN SOLUTION\n    return 1\n"
        "    # END SOLUTION\n",
        "x.py:2",
        "snake_case",
    ),
    "exercise line without hint": (
        "def f():\n    # EXERCISE f:\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
        "x.py:2",
        "malformed",
    ),
    "misspelt begin": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTIONS\n    return 1\n",
        "x.py:2",
        "",
    ),
    "lowercase end": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n    return 1\n    # end solution\n",
        "x.py:5",
        "inside the region",
    ),
    "id after begin": (
        "def f():\n    # BEGIN SOLUTION f\n    return 1\n    # END SOLUTION\n",
        "x.py:2",
        "malformed marker",
    ),
    "end indented differently": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n    return 1\n  # END SOLUTION\n",
        "x.py:5",
        "indented",
    ),
    "empty region": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n\n    # END SOLUTION\n",
        "x.py:5",
        "empty",
    ),
    "region leaves its block": (
        "def f():\n    # EXERCISE f: h.\n    # BEGIN SOLUTION\n    y = 1\nz = 2\n"
        "    # END SOLUTION\n",
        "x.py:5",
        "indented less",
    ),
    "exercise line indented differently": (
        "def f():\n  # EXERCISE f: h.\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
        "x.py:3",
        "same indentation",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MARKERS))
def test_parse_regions_rejects_bad_markers(case: str) -> None:
    text, location, words = BAD_MARKERS[case]
    with pytest.raises(ExerciseError) as error:
        parse_regions(text, "x.py")
    assert str(error.value).startswith(location + ":"), str(error.value)
    assert words in str(error.value)


def test_stripped_file_must_stay_valid_python(project: Path, tmp_path: Path) -> None:
    replace_line(
        project / "scratch" / "ops.py",
        "    return x * x\n    # END SOLUTION\n",
        "    return (x *\n    # END SOLUTION\n    x)\n",
    )
    with pytest.raises(ExerciseError, match=r"scratch/ops\.py:\d+: the file is not valid Python"):
        make_student_copy(project, tmp_path / "out")


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #
def test_check_project_maps_ids_to_regions(project: Path) -> None:
    exercises, regions = check_project(project)

    assert list(exercises) == ["square_forward", "square_backward", "scale_layer"]
    assert exercises["square_backward"].points == 2.0
    assert exercises["square_backward"].keyword == "backward"
    assert sorted(regions) == ["scratch/layers/scale.py", "scratch/ops.py"]
    assert [r.exercise_id for r in regions["scratch/layers/scale.py"]] == ["scale_layer"] * 2


BAD_MANIFESTS = {
    "unknown key": (
        '[exercises.a]\nfiles = ["x.py"]\ntests = ["t.py"]\ntest = 1\n',
        "unknown keys",
    ),
    "missing tests": ('[exercises.a]\nfiles = ["x.py"]\n', "missing 'tests'"),
    "empty files": ('[exercises.a]\nfiles = []\ntests = ["t.py"]\n', "non-empty list"),
    "absolute path": ('[exercises.a]\nfiles = ["/x.py"]\ntests = ["t.py"]\n', "relative"),
    "bad points": ('[exercises.a]\nfiles = ["x.py"]\ntests = ["t.py"]\npoints = 0\n', "positive"),
    "bad id": ('[exercises.Bad]\nfiles = ["x.py"]\ntests = ["t.py"]\n', "snake_case"),
    "no exercises": ("", "no exercises"),
    "top-level key": ('title = "x"\n', "unknown top-level"),
    "unknown requirement": (
        '[exercises.a]\nfiles = ["x.py"]\ntests = ["t.py"]\nrequires = ["b"]\n',
        "unknown exercises",
    ),
    "self requirement": (
        '[exercises.a]\nfiles = ["x.py"]\ntests = ["t.py"]\nrequires = ["a"]\n',
        "cannot require itself",
    ),
    "wildcard in file": ('[exercises.a]\nfiles = ["x.py"]\ntests = ["tests/*.py"]\n', "wildcards"),
    "invalid toml": ("[exercises.a\n", "invalid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_parse_manifest_rejects_bad_entries(case: str) -> None:
    text, words = BAD_MANIFESTS[case]
    with pytest.raises(ExerciseError, match=words):
        parse_manifest(text)


def test_check_project_rejects_id_not_in_manifest(project: Path) -> None:
    replace_line(project / "scratch" / "ops.py", "# EXERCISE square_forward:", "# EXERCISE cube:")
    with pytest.raises(ExerciseError, match=r"scratch/ops\.py:7: exercise id 'cube' is not in"):
        check_project(project)


def test_check_project_rejects_region_in_unlisted_file(project: Path) -> None:
    replace_line(
        project / "scratch" / "ops.py", "# EXERCISE square_forward:", "# EXERCISE scale_layer:"
    )
    with pytest.raises(ExerciseError, match=r"scratch/ops\.py:7: exercise 'scale_layer' .* files"):
        check_project(project)


def test_check_project_rejects_exercise_without_region(project: Path) -> None:
    manifest = project / "scratch" / "exercises.toml"
    manifest.write_text(
        manifest.read_text() + '\n[exercises.cube]\nfiles = ["scratch/ops.py"]\ntests = ["tests"]\n'
    )
    with pytest.raises(ExerciseError, match=r"\[exercises\.cube\]: no '# EXERCISE cube' region"):
        check_project(project)


def test_check_project_rejects_missing_test_file(project: Path) -> None:
    replace_line(project / "scratch" / "exercises.toml", '"tests/test_ops.py"]', '"tests/nope.py"]')
    with pytest.raises(ExerciseError, match=r"test file tests/nope\.py not found"):
        check_project(project)


# --------------------------------------------------------------------------- #
# Student copy
# --------------------------------------------------------------------------- #
def test_student_copy_differs_only_inside_regions(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    copy = make_student_copy(project, out)
    _, regions = check_project(project)

    assert len(copy.stripped_regions) == 4
    source_files = {p.relative_to(project) for p in project.rglob("*") if p.is_file()}
    copy_files = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert copy_files == source_files

    for relative in sorted(source_files):
        source_bytes = (project / relative).read_bytes()
        copy_bytes = (out / relative).read_bytes()
        if relative.as_posix() not in regions:
            assert copy_bytes == source_bytes, f"{relative} changed but has no region"
            continue
        source_lines = split_lines(source_bytes.decode())
        copy_lines = split_lines(copy_bytes.decode())
        file_regions = regions[relative.as_posix()]
        matcher = difflib.SequenceMatcher(a=source_lines, b=copy_lines, autojunk=False)
        changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
        assert len(changes) == len(file_regions), f"{relative}: {changes}"
        for (tag, start, stop, copy_start, copy_stop), region in zip(
            changes, file_regions, strict=True
        ):
            assert tag == "replace"
            assert (start + 1, stop) == (region.begin_line, region.end_line)
            assert copy_lines[copy_start:copy_stop] == [
                f"{region.indent}raise NotImplementedError({json.dumps(region.hint)})\n"
            ]


def test_student_copy_skips_git_caches_and_runs(project: Path, tmp_path: Path) -> None:
    for junk in [
        ".git/HEAD",
        "scratch/__pycache__/ops.cpython-311.pyc",
        "runs/r1/log.txt",
        ".venv/bin/python",
        "lessons/intro.ipynb",
        "tests/.pytest_cache/x",
        "mnistgen.egg-info/PKG-INFO",
        "notes.txt",
    ]:
        path = project / junk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("junk")
    out = tmp_path / "student"
    make_student_copy(project, out)

    copied = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert {".git", "runs", ".venv", "mnistgen.egg-info", "notes.txt"}.isdisjoint(copied)
    assert not any(
        "__pycache__" in c or ".pytest_cache" in c or c.endswith(".ipynb") for c in copied
    )
    assert {"README.md", "pyproject.toml", "lessons/intro.md", "keras_impl/__init__.py"} <= copied
    assert set(STUDENT_COPY_ITEMS) >= {"scratch", "tests", "keras_impl", "lessons"}
    assert "runs" in EXCLUDED_NAMES


def test_student_copy_one_exercise(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    copy = make_student_copy(project, out, exercise_ids=["square_backward"])

    assert [region.exercise_id for region in copy.stripped_regions] == ["square_backward"]
    text = (out / "scratch" / "ops.py").read_text()
    assert "return x * x" in text
    assert "dx = 2 * x * grad_output" not in text
    scale = project / "scratch" / "layers" / "scale.py"
    assert (out / "scratch" / "layers" / "scale.py").read_bytes() == scale.read_bytes()
    with pytest.raises(ExerciseError, match="unknown exercise ids"):
        make_student_copy(project, tmp_path / "other", exercise_ids=["cube"])


def test_student_copy_rejects_non_empty_out(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    (out / "scratch").mkdir(parents=True)
    (out / "scratch" / "stale.py").write_text("old = 1\n")
    (out / "notes.txt").write_text("mine\n")

    with pytest.raises(ExerciseError, match="is not empty.*--force"):
        make_student_copy(project, out)
    assert not (out / "scratch" / "ops.py").exists(), "nothing may be written before the checks"

    make_student_copy(project, out, force=True)
    assert not (out / "scratch" / "stale.py").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    assert "NotImplementedError" in (out / "scratch" / "ops.py").read_text()


@pytest.mark.parametrize("where", ["inside", "same", "parent"])
def test_student_copy_rejects_out_around_source(project: Path, where: str) -> None:
    out = {"inside": project / "student", "same": project, "parent": project.parent}[where]
    with pytest.raises(ExerciseError, match="source tree"):
        make_student_copy(project, out, force=True)
    assert not (project / "student").exists()


def test_student_copy_rejects_bad_markers_before_writing(project: Path, tmp_path: Path) -> None:
    replace_line(
        project / "scratch" / "layers" / "scale.py",
        "        # END SOLUTION\n        return y",
        "        return y",
    )
    out = tmp_path / "student"
    with pytest.raises(
        ExerciseError, match=r"scratch/layers/scale\.py:19: this line is indented less"
    ):
        make_student_copy(project, out)
    assert not out.exists()


# --------------------------------------------------------------------------- #
# Grading the synthetic project
# --------------------------------------------------------------------------- #
def test_grade_source_scores_full_marks(project: Path) -> None:
    report = grade(project, source_root=project, include_other_tests=True)

    assert report.full_marks, [result.reason for result in report.exercises]
    assert (report.score, report.max_score) == (4.0, 4.0)
    for result in report.exercises:
        claimed = {test.test_id for test in result.tests}
        assert claimed == EXERCISE_TESTS[result.exercise.exercise_id]
    assert {test.test_id for test in report.other_tests} == OTHER_TESTS
    assert failing_tests(report) == set()


@pytest.mark.parametrize("exercise_id", list(EXERCISE_TESTS))
def test_grade_stripped_fails_only_that_exercise(
    project: Path, tmp_path: Path, exercise_id: str
) -> None:
    out = tmp_path / "student"
    make_student_copy(project, out, exercise_ids=[exercise_id])
    report = grade(out, source_root=project, include_other_tests=True)

    assert failing_tests(report) == EXERCISE_TESTS[exercise_id]
    statuses = {result.exercise.exercise_id: result.passed for result in report.exercises}
    assert statuses == {other: other != exercise_id for other in EXERCISE_TESTS}
    failed = next(r for r in report.exercises if r.exercise.exercise_id == exercise_id)
    assert "NotImplementedError: " in failed.reason
    assert failed.first_failure.location.startswith(str(out.resolve() / "scratch"))


def test_grade_restored_copy_scores_full_marks(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    make_student_copy(project, out)
    stripped = grade(out, source_root=project)
    assert stripped.score == 0.0
    assert all("NotImplementedError" in result.reason for result in stripped.exercises)

    for path in ["scratch/ops.py", "scratch/layers/scale.py"]:
        shutil.copy2(project / path, out / path)
    restored = grade(out, source_root=project)
    assert restored.full_marks, [result.reason for result in restored.exercises]
    assert restored.score == restored.max_score == 4.0


def test_grade_wrong_solution_names_wrong_tensor(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    make_student_copy(project, out)
    shutil.copy2(project / "scratch" / "ops.py", out / "scratch" / "ops.py")
    replace_line(out / "scratch" / "ops.py", "dx = 2 * x * grad_output", "dx = x * grad_output")
    replace_line(
        out / "scratch" / "layers" / "scale.py",
        '        raise NotImplementedError("dfactor',
        "        self.dfactor = 0.0\n        return grad_output * self.factor\n        #",
    )
    replace_line(
        out / "scratch" / "layers" / "scale.py",
        '        raise NotImplementedError("multiply',
        "        y = x * self.factor\n        #",
    )
    report = grade(out, source_root=project)
    results = {result.exercise.exercise_id: result for result in report.exercises}

    assert results["square_forward"].passed
    square = results["square_backward"]
    assert not square.passed
    assert square.first_failure.test_id == "tests/test_ops.py::test_square_backward"
    assert square.first_failure.message.startswith("dx: max abs difference")
    assert "> tolerance" in square.first_failure.message
    scale = results["scale_layer"]
    assert scale.tests_passed == 2
    assert scale.first_failure.message.startswith("dfactor: max abs difference")


def test_grade_keyword_narrows_tests(project: Path) -> None:
    report = grade(project, source_root=project, keyword="scale_forward")
    results = {result.exercise.exercise_id: result for result in report.exercises}

    assert [test.test_id for test in results["scale_layer"].tests] == [
        "tests/test_scale.py::test_scale_forward[0.5]",
        "tests/test_scale.py::test_scale_forward[3.0]",
    ]
    assert results["scale_layer"].passed
    assert results["square_forward"].reason.startswith("no test matched")


def test_grade_max_cases_samples_each_function(project: Path) -> None:
    report = grade(project, source_root=project, max_cases=1, include_other_tests=True)
    results = {result.exercise.exercise_id: result for result in report.exercises}

    assert [test.test_id for test in results["scale_layer"].tests] == [
        "tests/test_scale.py::test_scale_forward[0.5]",
        "tests/test_scale.py::test_scale_backward",
    ]
    assert {test.test_id for test in report.other_tests} == OTHER_TESTS
    assert report.full_marks


def test_grade_ignores_student_edited_tests(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    make_student_copy(project, out, exercise_ids=["square_forward"])
    (out / "tests" / "test_ops.py").write_text("def test_square_forward():\n    pass\n")
    report = grade(out, source_root=project, exercise_ids=["square_forward"])

    assert [result.exercise.exercise_id for result in report.exercises] == ["square_forward"]
    assert not report.exercises[0].passed


def test_grade_reports_collection_error(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    shutil.copytree(project, out)
    (out / "scratch" / "ops.py").write_text("def square(x):\n    return x *\n")
    report = grade(out, source_root=project)
    results = {result.exercise.exercise_id: result for result in report.exercises}

    assert results["scale_layer"].passed
    for exercise_id in ["square_forward", "square_backward"]:
        assert results[exercise_id].reason.startswith("could not collect tests/test_ops.py")
        assert "SyntaxError" in results[exercise_id].reason
    assert report.collect_errors[0]["path"] == "tests/test_ops.py"


def test_grade_times_out_instead_of_hanging(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    make_student_copy(project, out, exercise_ids=["square_forward"])
    replace_line(
        out / "scratch" / "ops.py",
        '    raise NotImplementedError("return x squared, element by element.")',
        "    while True:\n        pass",
    )
    started = time.monotonic()
    report = grade(out, source_root=project, timeout=8)
    elapsed = time.monotonic() - started

    assert report.timed_out
    assert elapsed < 8 + 10, f"grading took {elapsed:.1f} s with an 8 s time limit"
    results = {result.exercise.exercise_id: result for result in report.exercises}
    assert not results["square_forward"].passed
    assert "timed out after 8 s" in results["square_forward"].reason
    assert report.score < report.max_score


def test_grade_rejects_folder_without_scratch(project: Path, tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="has no 'scratch' package"):
        grade(tmp_path / "empty", source_root=project)
    with pytest.raises(ExerciseError, match="unknown exercise ids"):
        grade(project, source_root=project, exercise_ids=["cube"])


def test_grade_rejects_other_scratch_import(project: Path, tmp_path: Path) -> None:
    exercises, _ = check_project(project)
    records = [
        {"kind": "scratch", "file": str(PROJECT_ROOT / "scratch" / "__init__.py"), "error": None}
    ]
    with pytest.raises(GradingError, match="imported 'scratch' from .*not from the student"):
        _build_report(records, exercises, tmp_path, project, project, 0, False, 60.0, "", False)


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
def run_command(*arguments: str) -> int:
    parser = argparse.ArgumentParser(prog="mnistgen")
    add_exercises_parser(parser.add_subparsers(dest="command", required=True))
    return run_exercises(parser.parse_args(["exercises", *arguments]))


def test_command_make_grade_and_json(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    replace_line(
        project / "scratch" / "exercises.toml",
        "points = 2\n",
        'points = 2\nrequires = ["square_forward"]\n',
    )
    out = tmp_path / "student"
    assert run_command("make", str(out), "--source", str(project)) == 0
    assert "4 solution regions stripped in 2 files" in capsys.readouterr().out

    assert run_command("make", str(out), "--source", str(project)) == 2
    assert "is not empty" in capsys.readouterr().err

    json_path = tmp_path / "grades.json"
    status = run_command("grade", str(out), "--source", str(project), "--json", str(json_path))
    printed = capsys.readouterr().out
    assert status == 1
    assert "FAIL  square_backward" in printed
    assert "(its tests also run square_forward, which fails too; solve that first)" in printed
    assert "Score: 0/4 points (0%), 0 of 3 exercises passed." in printed

    grades = json.loads(json_path.read_text())
    assert grades["format"] == "mnistgen-exercise-grades"
    assert (grades["score"], grades["max_score"]) == (0.0, 4.0)
    assert [e["id"] for e in grades["exercises"]] == list(EXERCISE_TESTS)
    backward = grades["exercises"][1]
    assert backward["status"] == "failed"
    assert backward["requires"] == ["square_forward"]
    assert (backward["tests_passed"], backward["tests_total"]) == (0, 1)
    assert backward["first_failure"]["test"] == "tests/test_ops.py::test_square_backward"
    assert backward["first_failure"]["message"].startswith("NotImplementedError: d(x**2)/dx")

    assert run_command("grade", str(project), "--source", str(project)) == 0
    assert "Score: 4/4 points (100%)" in capsys.readouterr().out


def test_command_check_lists_exercises(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_command("check", "--source", str(project)) == 0
    printed = capsys.readouterr().out
    assert "3 exercises" in printed
    assert "regions: scratch/layers/scale.py:14, scratch/layers/scale.py:21" in printed

    replace_line(
        project / "scratch" / "ops.py",
        "    # END SOLUTION\n\n\ndef square_backward",
        "\n\ndef square_backward",
    )
    assert run_command("check", "--source", str(project)) == 2
    assert "error: scratch/ops.py:" in capsys.readouterr().err


def test_command_grade_rejects_bad_timeout(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_command("grade", str(project), "--source", str(project), "--timeout", "0") == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# This repository's own exercises
# --------------------------------------------------------------------------- #
# One parametrised case per test function keeps these runs short; every
# test function of every exercise still runs once.
PROJECT_MAX_CASES = 1


def test_project_manifest_matches_regions() -> None:
    exercises, regions = check_project(PROJECT_ROOT)
    region_ids = {region.exercise_id for found in regions.values() for region in found}

    assert exercises, "scratch/exercises.toml lists no exercise"
    assert region_ids == set(exercises)


def test_project_student_copy_strips_every_region(tmp_path: Path) -> None:
    out = tmp_path / "student"
    copy = make_student_copy(PROJECT_ROOT, out)
    _, regions = check_project(PROJECT_ROOT)

    assert len(copy.stripped_regions) == sum(len(found) for found in regions.values())
    for path in regions:
        text = (out / path).read_text(encoding="utf-8")
        assert "# BEGIN SOLUTION" not in text, path
        assert text.count("raise NotImplementedError(") >= len(regions[path]), path
        ast.parse(text)
    assert not (out / ".git").exists()
    assert (out / "pyproject.toml").read_bytes() == (PROJECT_ROOT / "pyproject.toml").read_bytes()


def test_project_solutions_score_full_marks() -> None:
    report = grade(PROJECT_ROOT, source_root=PROJECT_ROOT, max_cases=PROJECT_MAX_CASES)

    for result in report.exercises:
        assert result.passed, f"{result.exercise.exercise_id}: {result.reason}"
    assert report.score == report.max_score


def _project_exercise_ids() -> list[str]:
    try:
        return list(load_manifest(PROJECT_ROOT))
    except ExerciseError:
        return []  # test_project_manifest_matches_regions reports the error


def _exercises_requiring(exercise_id: str) -> set[str]:
    """Ids of the exercises that require ``exercise_id``, directly or through others."""
    exercises = load_manifest(PROJECT_ROOT)
    found: set[str] = set()
    frontier = {exercise_id}
    while frontier:
        frontier = {
            other_id
            for other_id, other in exercises.items()
            if frontier & set(other.requires) and other_id not in found
        }
        found |= frontier
    return found


@pytest.mark.parametrize("exercise_id", _project_exercise_ids())
def test_project_exercise_fails_alone(tmp_path: Path, exercise_id: str) -> None:
    out = tmp_path / "student"
    make_student_copy(PROJECT_ROOT, out, exercise_ids=[exercise_id])
    report = grade(out, source_root=PROJECT_ROOT, max_cases=PROJECT_MAX_CASES)
    results = {result.exercise.exercise_id: result for result in report.exercises}
    stripped = results.pop(exercise_id)
    dependents = _exercises_requiring(exercise_id)

    assert not stripped.passed, f"{exercise_id} passes without its solution"
    assert stripped.tests, stripped.reason
    passing = [test.test_id for test in stripped.tests if test.outcome == "passed"]
    assert passing == [], f"manifest tests of {exercise_id} pass without the solution"
    for other_id, result in results.items():
        if other_id in dependents:
            assert not result.passed, f"{other_id} requires {exercise_id} but passes without it"
        else:
            assert result.passed, f"{other_id} fails without {exercise_id}: {result.reason}"
