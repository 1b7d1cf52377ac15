"""Exercises made from the scratch code: strip marked solutions, grade a student's copy.

Solution regions in ``scratch/`` are marked with ``# EXERCISE <id>: <hint>``,
``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines (see ``markers``), and the
manifest ``scratch/exercises.toml`` names the tests that grade each exercise
(see ``manifest``). lessons/TEACHING.md is the teacher's guide.
"""

from keras_impl.exercises.command import add_exercises_parser, run_exercises
from keras_impl.exercises.grading import (
    DEFAULT_TIMEOUT_SECONDS,
    ExerciseResult,
    GradeReport,
    GradingError,
    TestResult,
    format_report,
    grade,
    write_json,
)
from keras_impl.exercises.manifest import (
    MANIFEST_PATH,
    Exercise,
    check_project,
    load_manifest,
    parse_manifest,
    scan_regions,
)
from keras_impl.exercises.markers import (
    ExerciseError,
    Region,
    parse_regions,
    strip_regions,
)
from keras_impl.exercises.student_copy import STUDENT_COPY_ITEMS, StudentCopy, make_student_copy

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MANIFEST_PATH",
    "STUDENT_COPY_ITEMS",
    "Exercise",
    "ExerciseError",
    "ExerciseResult",
    "GradeReport",
    "GradingError",
    "Region",
    "StudentCopy",
    "TestResult",
    "add_exercises_parser",
    "check_project",
    "format_report",
    "grade",
    "load_manifest",
    "make_student_copy",
    "parse_manifest",
    "parse_regions",
    "run_exercises",
    "scan_regions",
    "strip_regions",
    "write_json",
]
