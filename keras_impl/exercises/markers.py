"""Find the solution regions in a source file and replace them by a ``raise``.

A solution region is marked like this, at the indentation of the code it wraps::

    # EXERCISE leaky_relu_backward: the slope is 1 where x >= 0, else negative_slope.
    # BEGIN SOLUTION
    slope = np.where(self._x >= 0, 1.0, self.negative_slope).astype(self.dtype)
    return grad_output * slope
    # END SOLUTION

The ``# EXERCISE <id>: <hint>`` line sits directly above ``# BEGIN SOLUTION``
and stays in the student's copy. The lines from ``# BEGIN SOLUTION`` to
``# END SOLUTION`` (both included) become one line at the same indentation::

    raise NotImplementedError("the slope is 1 where x >= 0, else negative_slope.")

One exercise may own several regions (in one file or several), each with its
own ``# EXERCISE`` line. Markers are matched line by line, as nbgrader and
otter-grader do, so a marker must be the only text on its line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"

# Ids are snake_case so that they read well in reports, JSON keys and ``--exercise``.
EXERCISE_ID_PATTERN = r"[a-z][a-z0-9_]*"
_EXERCISE_LINE = re.compile(rf"# EXERCISE (?P<id>{EXERCISE_ID_PATTERN}): (?P<hint>\S.*)")
_EXERCISE_LIKE = re.compile(r"#\s*EXERCISE\b")
_SOLUTION_MARKER_LIKE = re.compile(r"#\s*(BEGIN|END)[\s_-]*SOLUTION", re.IGNORECASE)


class ExerciseError(ValueError):
    """A marker, manifest or student-copy problem, with the file and line to fix."""


@dataclass(frozen=True)
class Region:
    """One solution region in a source file.

    Line numbers are 1-based, as editors show them. ``begin_line`` is the
    ``# BEGIN SOLUTION`` line and ``end_line`` the ``# END SOLUTION`` line;
    the ``# EXERCISE`` line is ``begin_line - 1``.
    """

    exercise_id: str
    hint: str
    path: str
    begin_line: int
    end_line: int
    indent: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.begin_line - 1}"


def split_lines(text: str) -> list[str]:
    """Split ``text`` after each ``\\n``, keeping the line endings.

    Unlike ``str.splitlines`` this never splits at form feeds or other
    Unicode line separators, so line numbers match what an editor shows and
    joining the pieces gives back ``text`` exactly.
    """
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def _indent_of(line: str) -> str:
    content = _content(line)
    return content[: len(content) - len(content.lstrip())]


def parse_regions(text: str, path: str) -> list[Region]:
    """Return the solution regions of one file, in file order.

    ``path`` is only used in messages and in the returned regions.

    Raises:
        ExerciseError: for an unclosed, unopened or nested region, a region
            without an ``# EXERCISE`` line, a malformed marker, an empty
            region, or a region that leaves the block it starts in.
    """
    regions: list[Region] = []
    pending: tuple[int, str, str, str] | None = None  # (line, id, hint, indent)
    open_region: tuple[int, str, str, str] | None = None  # (begin line, id, hint, indent)
    has_code = False

    for number, line in enumerate(split_lines(text), start=1):
        stripped = line.strip()
        indent = _indent_of(line)
        where = f"{path}:{number}"

        if open_region is not None:
            begin_line, exercise_id, hint, region_indent = open_region
            if stripped == BEGIN_MARKER:
                raise ExerciseError(
                    f"{where}: nested '{BEGIN_MARKER}' inside the region opened at line "
                    f"{begin_line}; close that region with '{END_MARKER}' first."
                )
            if stripped == END_MARKER:
                if indent != region_indent:
                    raise ExerciseError(
                        f"{where}: '{END_MARKER}' is indented {len(indent)} characters but "
                        f"its '{BEGIN_MARKER}' at line {begin_line} is indented "
                        f"{len(region_indent)}; indent both markers like the code they wrap."
                    )
                if not has_code:
                    raise ExerciseError(
                        f"{where}: the region opened at line {begin_line} is empty; "
                        "put the solution lines between the markers."
                    )
                regions.append(Region(exercise_id, hint, path, begin_line, number, region_indent))
                open_region = None
                continue
            if _EXERCISE_LIKE.match(stripped) or _SOLUTION_MARKER_LIKE.match(stripped):
                raise ExerciseError(
                    f"{where}: marker {stripped!r} inside the region opened at line "
                    f"{begin_line}; regions cannot be nested or share lines."
                )
            if stripped and not _content(line).startswith(region_indent):
                raise ExerciseError(
                    f"{where}: this line is indented less than '{BEGIN_MARKER}' at line "
                    f"{begin_line}; a region must stay inside the block it starts in."
                )
            has_code = has_code or bool(stripped)
            continue

        if pending is not None and stripped != BEGIN_MARKER:
            raise ExerciseError(
                f"{path}:{pending[0]}: '# EXERCISE {pending[1]}' must be followed directly "
                f"by a '{BEGIN_MARKER}' line at the same indentation."
            )

        if _EXERCISE_LIKE.match(stripped):
            match = _EXERCISE_LINE.fullmatch(stripped)
            if match is None:
                raise ExerciseError(
                    f"{where}: malformed exercise line {stripped!r}; expected "
                    "'# EXERCISE <id>: <one-line hint>' with a snake_case id."
                )
            pending = (number, match["id"], match["hint"].strip(), indent)
            continue

        if stripped == BEGIN_MARKER:
            if pending is None:
                raise ExerciseError(
                    f"{where}: region without an id; add a line "
                    "'# EXERCISE <id>: <one-line hint>' directly above it."
                )
            exercise_line, exercise_id, hint, exercise_indent = pending
            if exercise_indent != indent:
                raise ExerciseError(
                    f"{where}: '{BEGIN_MARKER}' and its '# EXERCISE' line {exercise_line} "
                    "must have the same indentation."
                )
            open_region = (number, exercise_id, hint, indent)
            pending = None
            has_code = False
            continue

        if stripped == END_MARKER:
            raise ExerciseError(f"{where}: '{END_MARKER}' without a matching '{BEGIN_MARKER}'.")

        if _SOLUTION_MARKER_LIKE.match(stripped):
            raise ExerciseError(
                f"{where}: malformed marker {stripped!r}; write exactly "
                f"'{BEGIN_MARKER}' or '{END_MARKER}' on a line of its own."
            )

    if open_region is not None:
        raise ExerciseError(
            f"{path}:{open_region[0]}: '{BEGIN_MARKER}' is never closed; "
            f"add '{END_MARKER}' after the solution lines."
        )
    if pending is not None:
        raise ExerciseError(
            f"{path}:{pending[0]}: '# EXERCISE {pending[1]}' is not followed by a "
            f"'{BEGIN_MARKER}' line."
        )
    return regions


def python_string_literal(text: str) -> str:
    """Return ``text`` as a double-quoted Python string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def replacement_line(region: Region, line_ending: str) -> str:
    """Return the line that replaces ``region`` in the student's copy."""
    message = python_string_literal(region.hint)
    return f"{region.indent}raise NotImplementedError({message}){line_ending}"


def strip_regions(text: str, regions: list[Region], selected: set[str] | None = None) -> str:
    """Return ``text`` with each region replaced by ``raise NotImplementedError(hint)``.

    ``regions`` must come from ``parse_regions(text, ...)``. With ``selected``,
    only the regions of those exercise ids are replaced. Every other line is
    kept byte for byte, including its line ending.
    """
    lines = split_lines(text)
    out: list[str] = []
    position = 0  # index of the next line of `lines` to copy
    for region in regions:
        if selected is not None and region.exercise_id not in selected:
            continue
        begin_index = region.begin_line - 1
        out.extend(lines[position:begin_index])
        begin_line = lines[begin_index]
        line_ending = begin_line[len(_content(begin_line)) :]
        out.append(replacement_line(region, line_ending))
        position = region.end_line
    out.extend(lines[position:])
    return "".join(out)


def check_syntax(text: str, path: str) -> None:
    """Raise ExerciseError if the stripped ``text`` is not valid Python."""
    try:
        ast.parse(text, filename=path)
    except SyntaxError as error:
        raise ExerciseError(
            f"{path}:{error.lineno}: the file is not valid Python once its regions are "
            f"replaced ({error.msg}); a region must hold whole statements."
        ) from error


def read_source(path: Path, display_path: str) -> str:
    """Read a Python file as UTF-8 text, with line endings left untouched."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExerciseError(f"{display_path}: not valid UTF-8 ({error}).") from error
