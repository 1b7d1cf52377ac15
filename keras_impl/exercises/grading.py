"""Grade a student's copy with the teacher's tests, in one pytest subprocess.

The student's ``scratch`` package is copied into a fresh temporary folder
that comes first on ``PYTHONPATH``. Python's path finder runs before the
editable-install finder that ``pip install -e`` appends to ``sys.meta_path``
(setuptools' ``__editable__`` finder), so ``import scratch`` in the
subprocess loads the student's copy. The pytest plugin reports
``scratch.__file__``, and ``grade`` rejects the run if it points anywhere
else. The tests, ``conftest.py`` and ``keras_impl`` all come from the
teacher's project, so edits to the student's own tests change nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_impl.exercises.manifest import PACKAGE, Exercise, check_project
from keras_impl.exercises.markers import ExerciseError

logger = logging.getLogger(__name__)

# A generous bound for the whole pytest run, not a measured need: a
# student's infinite loop must end as a failed grade, not a hung command.
DEFAULT_TIMEOUT_SECONDS = 600.0
JSON_FORMAT = "mnistgen-exercise-grades"
JSON_VERSION = 1
_PLUGIN = "keras_impl.exercises.pytest_plugin"
# The pytest plugin reads its spec file's path from this environment variable.
SPEC_VARIABLE = "MNISTGEN_EXERCISE_SPEC"
_OUTPUT_TAIL_LINES = 40


class GradingError(RuntimeError):
    """The grading run itself failed (not the student's code)."""


@dataclass
class TestResult:
    """The outcome of one test: passed, failed, skipped or not run."""

    test_id: str
    outcome: str
    message: str = ""
    location: str = ""
    duration: float = 0.0
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        result = {
            "id": self.test_id,
            "outcome": self.outcome,
            "message": self.message,
            "location": self.location,
            "duration_seconds": round(self.duration, 3),
        }
        if self.outcome == "failed":
            result["details"] = self.details
        return result


@dataclass
class ExerciseResult:
    """The grade of one exercise: all of its tests pass, or it fails."""

    exercise: Exercise
    tests: list[TestResult]
    reason: str = ""

    @property
    def passed(self) -> bool:
        return not self.reason

    @property
    def score(self) -> float:
        return self.exercise.points if self.passed else 0.0

    @property
    def tests_passed(self) -> int:
        return sum(test.outcome == "passed" for test in self.tests)

    @property
    def first_failure(self) -> TestResult | None:
        for test in self.tests:
            if test.outcome in ("failed", "not run"):
                return test
        return None

    def to_dict(self) -> dict[str, Any]:
        failure = self.first_failure
        first_failure = None
        if failure is not None:
            first_failure = {
                "test": failure.test_id,
                "message": failure.message,
                "location": failure.location,
            }
        return {
            "id": self.exercise.exercise_id,
            "title": self.exercise.title,
            "status": "passed" if self.passed else "failed",
            "score": self.score,
            "max_score": self.exercise.points,
            "tests_passed": self.tests_passed,
            "tests_total": len(self.tests),
            "reason": self.reason,
            "requires": list(self.exercise.requires),
            "first_failure": first_failure,
            "tests": [test.to_dict() for test in self.tests],
        }


@dataclass
class GradeReport:
    """Everything ``grade`` found out, ready to print or to write as JSON."""

    student_root: Path
    source_root: Path
    exercises: list[ExerciseResult]
    timed_out: bool
    timeout_seconds: float
    duration_seconds: float
    pytest_exit_status: int | None
    scratch_import_error: str | None = None
    collect_errors: list[dict[str, str]] = field(default_factory=list)
    other_tests: list[TestResult] | None = None

    @property
    def score(self) -> float:
        return sum(result.score for result in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(result.exercise.points for result in self.exercises)

    @property
    def full_marks(self) -> bool:
        return all(result.passed for result in self.exercises)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "student": str(self.student_root),
            "source": str(self.source_root),
            "score": self.score,
            "max_score": self.max_score,
            "timed_out": self.timed_out,
            "timeout_seconds": self.timeout_seconds,
            "duration_seconds": round(self.duration_seconds, 3),
            "pytest_exit_status": self.pytest_exit_status,
            "scratch_import_error": self.scratch_import_error,
            "collect_errors": self.collect_errors,
            "exercises": [result.to_dict() for result in self.exercises],
            "other_tests": None
            if self.other_tests is None
            else [test.to_dict() for test in self.other_tests],
        }


def default_source_root() -> Path:
    """Return the project this tool belongs to (the folder that contains ``keras_impl``)."""
    return Path(__file__).resolve().parents[2]


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A line cut short by the time limit; the tests before it still count.
            logger.warning("Ignoring a truncated result line: %r", line[:200])
    return records


def _output_tail(path: Path) -> str:
    if not path.exists():
        return "(no output)"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_OUTPUT_TAIL_LINES:])


def _stop_process_group(process: subprocess.Popen) -> None:
    """Kill the pytest subprocess and anything it started (its own session)."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        process.kill()
    process.wait()


def _run_pytest(
    sandbox: Path,
    source_root: Path,
    test_files: list[str],
    options: list[str],
    spec: dict[str, Any],
    timeout: float,
) -> tuple[int | None, bool, Path]:
    """Run pytest once; return (exit status or None on timeout, timed out, output file)."""
    spec_path = sandbox / "grading-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    output_path = sandbox / "pytest-output.txt"

    env = dict(os.environ)
    # The teacher's shell settings must not change which tests run or how.
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(sandbox), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env[SPEC_VARIABLE] = str(spec_path)

    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        _PLUGIN,
        "--rootdir",
        str(source_root),
        "--continue-on-collection-errors",
        "-q",
        "--tb=short",
        *options,
        *[str(source_root / path) for path in test_files],
    ]
    logger.info("Running: %s", " ".join(command))
    with open(output_path, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=sandbox,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout), False, output_path
        except subprocess.TimeoutExpired:
            logger.warning("pytest ran over the time limit of %g s; stopping it.", timeout)
            _stop_process_group(process)
            return None, True, output_path


def _relocate(text: str, sandbox: Path, student_root: Path) -> str:
    """Show paths in the temporary copy as paths in the student's folder."""
    # The longer spelling first, in case one contains the other (/tmp -> /private/tmp).
    for prefix in sorted({str(sandbox), str(sandbox.resolve())}, key=len, reverse=True):
        text = text.replace(prefix, str(student_root))
    return text


def _grade_exercise(
    exercise: Exercise,
    claimed: list[str] | None,
    results: dict[str, TestResult],
    collect_errors: list[dict[str, str]],
    not_run_message: str,
) -> ExerciseResult:
    if not claimed:
        broken = [error for error in collect_errors if error["path"] in exercise.test_files()]
        if claimed is None:
            reason = not_run_message
        elif broken:
            reason = f"could not collect {broken[0]['path']}: {broken[0]['message']}"
        else:
            keyword = f" with keyword {exercise.keyword!r}" if exercise.keyword else ""
            reason = f"no test matched {list(exercise.tests)}{keyword}"
        return ExerciseResult(exercise, [], reason)

    tests = [
        results.get(test_id) or TestResult(test_id, "not run", not_run_message)
        for test_id in claimed
    ]
    result = ExerciseResult(exercise, tests)
    failure = result.first_failure
    if failure is not None:
        result.reason = f"{failure.test_id}: {failure.message}"
    elif result.tests_passed == 0:
        result.reason = f"every test was skipped ({tests[0].message})"
    return result


def grade(
    student_root: Path,
    source_root: Path | None = None,
    exercise_ids: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    include_other_tests: bool = False,
    keyword: str | None = None,
    max_cases: int | None = None,
) -> GradeReport:
    """Run the teacher's tests of each exercise against the student's ``scratch``.

    Args:
        student_root: the student's project folder (it must hold ``scratch/``).
        source_root: the teacher's project (default: the one this tool is in).
        exercise_ids: grade only these exercises (default: all).
        timeout: seconds for the whole pytest run. Tests unfinished by then
            count as failed.
        include_other_tests: also run, and report, the tests in the same test
            files that no exercise claims.
        keyword: a ``pytest -k`` expression that narrows every exercise's
            tests further, for a quick check. A real grade leaves it None.
        max_cases: run at most this many parametrised cases of each test
            function, for a quick check. A real grade leaves it None.

    Raises:
        ExerciseError: for a manifest or marker problem in the source, or an
            unknown exercise id.
        GradingError: if the student's folder has no ``scratch`` package,
            pytest imported another ``scratch``, or pytest itself failed.
    """
    student_root = Path(student_root).resolve()
    source_root = (Path(source_root) if source_root else default_source_root()).resolve()
    exercises, _ = check_project(source_root)
    if exercise_ids is not None:
        unknown = [exercise_id for exercise_id in exercise_ids if exercise_id not in exercises]
        if unknown:
            raise ExerciseError(
                f"unknown exercise ids {unknown}; the manifest has {list(exercises)}."
            )
        exercises = {
            exercise_id: exercise
            for exercise_id, exercise in exercises.items()
            if exercise_id in exercise_ids
        }
    if max_cases is not None and max_cases < 1:
        raise GradingError(f"max_cases must be at least 1, got {max_cases}.")
    student_package = student_root / PACKAGE
    if not (student_package / "__init__.py").is_file():
        raise GradingError(
            f"{student_root} has no '{PACKAGE}' package ({student_package}/__init__.py is "
            "missing); pass the root folder of the student's copy."
        )

    test_files = list(dict.fromkeys(f for e in exercises.values() for f in e.test_files()))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mnistgen-grade-") as temporary:
        sandbox = Path(temporary)
        shutil.copytree(
            student_package,
            sandbox / PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        spec = {
            "package": PACKAGE,
            "results": str(sandbox / "results.jsonl"),
            "include_other_tests": include_other_tests,
            "max_cases": max_cases,
            "exercises": {
                exercise_id: {"tests": list(exercise.tests), "keyword": exercise.keyword}
                for exercise_id, exercise in exercises.items()
            },
        }
        options = [] if keyword is None else ["-k", keyword]
        exit_status, timed_out, output_path = _run_pytest(
            sandbox, source_root, test_files, options, spec, timeout
        )
        records = _read_records(Path(spec["results"]))
        tail = _output_tail(output_path)
        report = _build_report(
            records,
            exercises,
            sandbox,
            student_root,
            source_root,
            exit_status,
            timed_out,
            timeout,
            tail,
            include_other_tests,
        )
    report.duration_seconds = time.monotonic() - started
    return report


def _build_report(
    records: list[dict[str, Any]],
    exercises: dict[str, Exercise],
    sandbox: Path,
    student_root: Path,
    source_root: Path,
    exit_status: int | None,
    timed_out: bool,
    timeout: float,
    output_tail: str,
    include_other_tests: bool,
) -> GradeReport:
    if not timed_out and exit_status in (3, 4):
        raise GradingError(
            f"pytest failed with exit status {exit_status} (internal or usage error); "
            f"its output ends with:\n{output_tail}"
        )
    scratch_records = [record for record in records if record["kind"] == "scratch"]
    if not scratch_records and not timed_out:
        raise GradingError(
            "the grading plugin reported nothing; pytest's output ends with:\n" + output_tail
        )
    scratch_import_error = None
    if scratch_records:
        scratch_file = scratch_records[0]["file"]
        scratch_import_error = scratch_records[0]["error"]
        expected_dir = (sandbox / PACKAGE).resolve()
        if scratch_file is not None and not Path(scratch_file).resolve().is_relative_to(
            expected_dir
        ):
            raise GradingError(
                f"pytest imported '{PACKAGE}' from {scratch_file}, not from the student's "
                f"copy; check PYTHONPATH, pytest's `pythonpath` setting and any .pth file "
                f"that puts another '{PACKAGE}' first on sys.path."
            )

    def relocate(text: str) -> str:
        return _relocate(text, sandbox, student_root)

    collect_errors = [
        {
            "path": record["path"],
            "message": relocate(record["message"]),
            "location": relocate(record["location"]),
        }
        for record in records
        if record["kind"] == "collect_error"
    ]
    results = {
        record["id"]: TestResult(
            test_id=record["id"],
            outcome=record["outcome"],
            message=relocate(record["message"]),
            location=relocate(record["location"]),
            duration=record["duration"],
            details=relocate(record["details"]),
        )
        for record in records
        if record["kind"] == "test"
    }
    selection = next((record for record in records if record["kind"] == "selection"), None)
    if timed_out:
        not_run_message = f"not run: the run timed out after {timeout:g} s"
    else:
        not_run_message = f"not run: pytest stopped early (exit status {exit_status})"

    graded = [
        _grade_exercise(
            exercise,
            None if selection is None else selection["claims"].get(exercise_id, []),
            results,
            collect_errors,
            not_run_message,
        )
        for exercise_id, exercise in exercises.items()
    ]
    other_tests = None
    if include_other_tests:
        claims = {} if selection is None else selection["claims"]
        claimed = {test_id for test_ids in claims.values() for test_id in test_ids}
        run = [] if selection is None else selection["run"]
        other_tests = [
            results.get(test_id) or TestResult(test_id, "not run", not_run_message)
            for test_id in run
            if test_id not in claimed
        ]
    return GradeReport(
        student_root=student_root,
        source_root=source_root,
        exercises=graded,
        timed_out=timed_out,
        timeout_seconds=timeout,
        duration_seconds=0.0,
        pytest_exit_status=exit_status,
        scratch_import_error=scratch_import_error,
        collect_errors=collect_errors,
        other_tests=other_tests,
    )


def _exercise_lines(
    result: ExerciseResult, failed_ids: set[str], student_root: Path, width: int
) -> list[str]:
    """Return the report lines of one exercise: its status, then why it failed.

    ``width`` is the column width of the exercise ids.
    """
    exercise = result.exercise
    status = "PASS" if result.passed else "FAIL"
    lines = [
        f"{status}  {exercise.exercise_id:<{width}}  "
        f"{result.tests_passed}/{len(result.tests)} tests  "
        f"{result.score:g}/{exercise.points:g} points  {exercise.title}"
    ]
    if result.passed:
        return lines

    lines.append(f"      {result.reason}")
    failed_requirements = [other for other in exercise.requires if other in failed_ids]
    if failed_requirements:
        lines.append(
            f"      (its tests also run {', '.join(failed_requirements)}, "
            "which fails too; solve that first)"
        )
    # Only a location in the student's code helps, because an assert_close
    # failure already names the tensor.
    failure = result.first_failure
    if failure is not None and failure.location.startswith(f"{student_root}{os.sep}"):
        lines.append(f"      at {failure.location}")
    return lines


def format_report(report: GradeReport) -> str:
    """Return the grade as text for a person: one block per exercise, then the score."""
    lines = [
        f"Grading {report.student_root}",
        f"  with the tests of {report.source_root} ('{PACKAGE}' imported from the student's copy)",
        "",
    ]
    failed_ids = {result.exercise.exercise_id for result in report.exercises if not result.passed}
    width = max(len(result.exercise.exercise_id) for result in report.exercises)
    for result in report.exercises:
        lines.extend(_exercise_lines(result, failed_ids, report.student_root, width))

    if report.other_tests is not None:
        failed = [test for test in report.other_tests if test.outcome != "passed"]
        lines.append("")
        lines.append(
            f"Other tests in the same files: {len(report.other_tests) - len(failed)} of "
            f"{len(report.other_tests)} passed."
        )
        for test in failed:
            lines.append(f"      {test.outcome.upper()} {test.test_id}: {test.message}")

    if report.scratch_import_error:
        lines.append("")
        lines.append(
            f"The student's '{PACKAGE}' package failed to import: {report.scratch_import_error}"
        )
    if report.timed_out:
        lines.append("")
        lines.append(
            f"The run hit the time limit of {report.timeout_seconds:g} s; "
            "unfinished tests count as failed."
        )

    passed = sum(result.passed for result in report.exercises)
    percent = 100.0 * report.score / report.max_score if report.max_score else 0.0
    lines.append("")
    lines.append(
        f"Score: {report.score:g}/{report.max_score:g} points ({percent:.0f}%), "
        f"{passed} of {len(report.exercises)} exercises passed."
    )
    return "\n".join(lines)


def write_json(report: GradeReport, path: Path) -> None:
    """Write the report as JSON (see lessons/TEACHING.md for the fields)."""
    Path(path).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
