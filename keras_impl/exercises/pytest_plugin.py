"""A pytest plugin that selects each exercise's tests and records their outcomes.

``grade`` loads it in a pytest subprocess with ``-p
keras_impl.exercises.pytest_plugin`` and passes a JSON spec file through the
environment variable ``MNISTGEN_EXERCISE_SPEC``. Without that variable the
plugin does nothing.

The plugin writes one JSON object per line to the spec's ``results`` file,
flushed as it goes, so a run stopped by the time limit still leaves the
outcomes of the tests that finished:

- ``{"kind": "scratch", ...}``: where ``scratch`` was imported from;
- ``{"kind": "selection", ...}``: the test ids each exercise claims;
- ``{"kind": "collect_error", ...}``: a test file that failed to import;
- ``{"kind": "test", ...}``: one finished test (outcome, message, duration);
- ``{"kind": "finished", ...}``: pytest's exit status.

Test ids are pytest node ids. ``grade`` runs pytest with ``--rootdir`` set to
the teacher's project, so the ids are relative to it, as in the manifest.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any

import pytest

from keras_impl.exercises.grading import SPEC_VARIABLE

_MESSAGE_LIMIT = 4000

_spec: dict[str, Any] | None = None
_phases: dict[str, dict[str, Any]] = {}


def _write(record: dict[str, Any]) -> None:
    assert _spec is not None
    with open(_spec["results"], "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def _matches_pattern(test_id: str, pattern: str) -> bool:
    """Apply the manifest's rule for one ``tests`` entry (see ``manifest``)."""
    if "*" in pattern:
        pieces = [
            ".*" if piece == "*" else re.escape(piece) for piece in re.split(r"(\*)", pattern)
        ]
        return re.fullmatch("".join(pieces), test_id) is not None
    return test_id == pattern or test_id.startswith((pattern + "::", pattern + "["))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _failure_message(report: pytest.TestReport | pytest.CollectReport) -> tuple[str, str, str]:
    """Return (first line of the error, its location, the full error text)."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        message = _first_line(crash.message)
        location = f"{crash.path}:{crash.lineno}"
    else:
        text = str(longrepr)
        error_lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
        message = error_lines[-1] if error_lines else _first_line(text)
        location = ""
    message = message.removeprefix("AssertionError: ")
    details = report.longreprtext
    if len(details) > _MESSAGE_LIMIT:
        details = details[:_MESSAGE_LIMIT] + "\n[... cut ...]"
    return message, location, details


def pytest_configure(config: pytest.Config) -> None:
    global _spec
    spec_path = os.environ.get(SPEC_VARIABLE)
    if not spec_path:
        return
    with open(spec_path, encoding="utf-8") as stream:
        _spec = json.load(stream)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _spec is None:
        return
    package = _spec["package"]
    try:
        module = importlib.import_module(package)
    except Exception as error:  # the student's package may fail to import in any way
        _write({"kind": "scratch", "file": None, "error": f"{type(error).__name__}: {error}"})
        return
    _write({"kind": "scratch", "file": getattr(module, "__file__", None), "error": None})


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # Running last, after pytest's own -k and -m deselection, so that the
    # recorded claims list only tests that actually run.
    if _spec is None:
        return
    # NOTE: pytest exposes no public API for -k expressions; these private
    # classes are what `pytest -k` itself uses (checked against pytest 9.2).
    from _pytest.mark import KeywordMatcher
    from _pytest.mark.expression import Expression

    keywords = {}
    for exercise_id, exercise in _spec["exercises"].items():
        if exercise.get("keyword"):
            try:
                keywords[exercise_id] = Expression.compile(exercise["keyword"])
            except SyntaxError as error:
                raise pytest.UsageError(
                    f"exercise '{exercise_id}': invalid keyword expression "
                    f"{exercise['keyword']!r}: {error}"
                ) from error

    claims: dict[str, list[str]] = {exercise_id: [] for exercise_id in _spec["exercises"]}
    max_cases = _spec.get("max_cases")
    cases_kept: dict[tuple[str, bool], int] = {}
    selected, deselected = [], []
    for item in items:
        test_id = item.nodeid
        owners = []
        for exercise_id, exercise in _spec["exercises"].items():
            if not any(_matches_pattern(test_id, pattern) for pattern in exercise["tests"]):
                continue
            expression = keywords.get(exercise_id)
            if expression is not None and not expression.evaluate(KeywordMatcher.from_item(item)):
                continue
            owners.append(exercise_id)

        keep = bool(owners) or _spec["include_other_tests"]
        if keep and max_cases is not None:
            # Count claimed and unclaimed cases apart, so that sampling keeps
            # at least one case of each test function for each exercise.
            function = (test_id.split("[", 1)[0], bool(owners))
            keep = cases_kept.get(function, 0) < max_cases
            cases_kept[function] = cases_kept.get(function, 0) + keep
        if keep:
            selected.append(item)
            for exercise_id in owners:
                claims[exercise_id].append(test_id)
        else:
            deselected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    _write(
        {
            "kind": "selection",
            "claims": claims,
            "run": [item.nodeid for item in selected],
        }
    )


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _spec is None or not report.failed:
        return
    message, location, details = _failure_message(report)
    _write(
        {
            "kind": "collect_error",
            "path": report.nodeid,
            "message": message,
            "location": location,
            "details": details,
        }
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _spec is None:
        return
    state = _phases.setdefault(
        report.nodeid,
        {"outcome": "passed", "message": "", "location": "", "details": "", "duration": 0.0},
    )
    state["duration"] += report.duration
    if report.failed and state["outcome"] != "failed":
        message, location, details = _failure_message(report)
        if report.when != "call":
            message = f"error in test {report.when}: {message}"
        state.update(outcome="failed", message=message, location=location, details=details)
    elif report.skipped and state["outcome"] == "passed":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        state.update(outcome="skipped", message=str(reason))

    if report.when == "teardown":
        _write({"kind": "test", "id": report.nodeid, **_phases.pop(report.nodeid)})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _spec is None:
        return
    _write({"kind": "finished", "exit_status": int(exitstatus)})
