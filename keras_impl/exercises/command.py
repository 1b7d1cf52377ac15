"""The ``mnistgen exercises`` command: check, make and grade the exercises."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_impl.exercises.grading import (
    DEFAULT_TIMEOUT_SECONDS,
    GradingError,
    default_source_root,
    format_report,
    grade,
    write_json,
)
from keras_impl.exercises.manifest import MANIFEST_PATH, check_project
from keras_impl.exercises.markers import ExerciseError
from keras_impl.exercises.student_copy import make_student_copy

# Exit statuses of `mnistgen exercises ...`.
EXIT_OK = 0
EXIT_NOT_FULL_MARKS = 1
EXIT_ERROR = 2


def add_exercises_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``exercises`` command, with ``check``, ``make`` and ``grade``, to ``subparsers``.

    The new parser's default ``func`` is ``run_exercises``.
    """
    parser = subparsers.add_parser(
        "exercises",
        help="make a student copy with the solutions stripped, or grade one",
        description=(
            "Turn the marked solution regions of scratch/ into exercises: write a student "
            "copy, and grade a student's copy with the teacher's tests. "
            "See lessons/TEACHING.md."
        ),
    )
    parser.set_defaults(func=run_exercises)
    commands = parser.add_subparsers(dest="exercises_command", metavar="COMMAND", required=True)

    source_help = "the teacher's project folder (default: the installed project, %(default)s)"

    check = commands.add_parser(
        "check", help=f"check the markers and {MANIFEST_PATH}, and list the exercises"
    )
    check.add_argument("--source", type=Path, default=default_source_root(), help=source_help)

    make = commands.add_parser("make", help="write a student copy with the solutions stripped")
    make.add_argument("out", type=Path, metavar="OUT", help="folder to write (new or empty)")
    make.add_argument("--source", type=Path, default=default_source_root(), help=source_help)
    make.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty OUT, replacing the project files already there",
    )
    make.add_argument(
        "--exercise",
        action="append",
        dest="exercise_ids",
        metavar="ID",
        help="strip only this exercise (repeat for several; default: all)",
    )

    grade_parser = commands.add_parser(
        "grade", help="grade a student's copy with the teacher's tests"
    )
    grade_parser.add_argument(
        "path", type=Path, metavar="PATH", help="root folder of the student's copy"
    )
    grade_parser.add_argument(
        "--source", type=Path, default=default_source_root(), help=source_help
    )
    grade_parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the grades as JSON to FILE"
    )
    grade_parser.add_argument(
        "--exercise",
        action="append",
        dest="exercise_ids",
        metavar="ID",
        help="grade only this exercise (repeat for several; default: all)",
    )
    grade_parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="time limit for the whole test run, in seconds (default: %(default)g)",
    )
    grade_parser.add_argument(
        "-k",
        dest="keyword",
        metavar="EXPRESSION",
        help="narrow every exercise's tests with this pytest -k expression (for quick checks)",
    )
    grade_parser.add_argument(
        "--max-cases",
        type=int,
        metavar="N",
        help="run at most N parametrised cases of each test function (for quick checks)",
    )
    grade_parser.add_argument(
        "--all-tests",
        action="store_true",
        help="also run and report the other tests in the exercises' test files",
    )
    return parser


def _run_check(args: argparse.Namespace) -> int:
    exercises, regions = check_project(args.source)
    print(f"{len(exercises)} exercises in {Path(args.source) / MANIFEST_PATH}:")
    for exercise_id, exercise in exercises.items():
        locations = [
            region.location
            for file_regions in regions.values()
            for region in file_regions
            if region.exercise_id == exercise_id
        ]
        unit = "point" if exercise.points == 1 else "points"
        print(f"  {exercise_id}: {exercise.title} ({exercise.points:g} {unit})")
        print(f"    regions: {', '.join(locations)}")
        if exercise.requires:
            print(f"    requires: {', '.join(exercise.requires)}")
        keyword = f" -k {exercise.keyword!r}" if exercise.keyword else ""
        print(f"    tests:   {' '.join(exercise.tests)}{keyword}")
    return EXIT_OK


def _run_make(args: argparse.Namespace) -> int:
    copy = make_student_copy(
        args.source, args.out, force=args.force, exercise_ids=args.exercise_ids
    )
    files = sorted({region.path for region in copy.stripped_regions})
    print(
        f"Wrote the student copy to {copy.out}: {len(copy.stripped_regions)} solution regions "
        f"stripped in {len(files)} files."
    )
    for path in files:
        print(f"  {path}")
    return EXIT_OK


def _run_grade(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise GradingError(f"--timeout must be a positive number of seconds, got {args.timeout}.")
    report = grade(
        args.path,
        source_root=args.source,
        exercise_ids=args.exercise_ids,
        timeout=args.timeout,
        include_other_tests=args.all_tests,
        keyword=args.keyword,
        max_cases=args.max_cases,
    )
    print(format_report(report))
    if args.json is not None:
        write_json(report, args.json)
        print(f"Wrote the grades as JSON to {args.json}")
    return EXIT_OK if report.full_marks else EXIT_NOT_FULL_MARKS


def run_exercises(args: argparse.Namespace) -> int:
    """Run ``mnistgen exercises COMMAND``.

    Returns 0 on success (for ``grade``: full marks), 1 when ``grade`` found a
    failing exercise, and 2 when the command could not run (bad markers or
    manifest, refused output folder, broken grading run).
    """
    handlers = {"check": _run_check, "make": _run_make, "grade": _run_grade}
    try:
        return handlers[args.exercises_command](args)
    except (ExerciseError, GradingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m keras_impl.exercises COMMAND ...`` (the same as ``mnistgen exercises``)."""
    parser = argparse.ArgumentParser(prog="mnistgen")
    add_exercises_parser(parser.add_subparsers(dest="command", required=True))
    arguments = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(["exercises", *arguments])
    return run_exercises(args)
