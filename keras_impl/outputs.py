"""Files a training run writes: image grids, the GIF of them, the metrics CSV and plot.

Everything here is plain NumPy, Pillow and Matplotlib (Agg backend, no
display needed) and works the same for both backends. Each file is written
to a temporary name in the same directory and then moved into place with
``os.replace``, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from scratch.data import to_uint8

logger = logging.getLogger(__name__)

METRIC_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")
CSV_COLUMNS = ("epoch", "step", *METRIC_NAMES)

# Pixels of background between the digits of a grid, and the scale factor of the PNG.
GRID_PADDING = 2
GRID_ZOOM = 2


def _default_file_mode() -> int:
    """Return the mode ``open()`` gives a new file: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        # mkstemp creates the file readable by its owner only.
        os.chmod(temporary_path, _default_file_mode())
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- #
# Image grids and the GIF
# ---------------------------------------------------------------------- #
def grid_shape(n_images: int, rows: int | None = None, cols: int | None = None) -> tuple[int, int]:
    """Return ``(rows, cols)`` for ``n_images``: the given values, or a near-square grid."""
    if rows is None and cols is None:
        cols = math.ceil(math.sqrt(n_images))
    if rows is None:
        rows = math.ceil(n_images / cols)
    if cols is None:
        cols = math.ceil(n_images / rows)
    return rows, cols


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Tile images in [-1, 1], shape ``(n, 28, 28, 1)``, into one uint8 picture.

    Digits are drawn dark on white (ink = 0), as on paper. Unused cells stay white.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"image_grid: images have shape {images.shape}; expected (n, h, w, 1)")
    if images.shape[0] > rows * cols:
        raise ValueError(
            f"image_grid: {images.shape[0]} images do not fit in {rows} x {cols} cells"
        )
    n, height, width, _ = images.shape
    pixels = 255 - to_uint8(images[..., 0])  # (n, 28, 28), ink dark
    cell_h, cell_w = height + GRID_PADDING, width + GRID_PADDING
    canvas = np.full(
        (rows * cell_h + GRID_PADDING, cols * cell_w + GRID_PADDING), 255, dtype=np.uint8
    )
    for index in range(n):
        top = GRID_PADDING + (index // cols) * cell_h
        left = GRID_PADDING + (index % cols) * cell_w
        canvas[top : top + height, left : left + width] = pixels[index]
    return canvas


def save_grid(
    images: np.ndarray,
    path: str | Path,
    rows: int | None = None,
    cols: int | None = None,
    zoom: int = GRID_ZOOM,
) -> Path:
    """Save images in [-1, 1] as a PNG grid, enlarged ``zoom`` times without smoothing."""
    rows, cols = grid_shape(len(images), rows, cols)
    picture = Image.fromarray(image_grid(images, rows, cols), mode="L")
    if zoom != 1:
        picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG")
    return Path(path)


def save_gif(frame_paths: Sequence[str | Path], path: str | Path, duration_ms: int = 500) -> Path:
    """Combine PNG frames (one per epoch) into a looping GIF; the last frame stays longer."""
    if not frame_paths:
        raise ValueError("save_gif: no frames to combine")
    frames = []
    for frame_path in frame_paths:
        with Image.open(frame_path) as frame:
            frames.append(frame.convert("L"))
    durations = [duration_ms] * len(frames)
    durations[-1] = duration_ms * 4
    with atomic_path(path) as temporary:
        frames[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
        )
    return Path(path)


# ---------------------------------------------------------------------- #
# Per-step metrics
# ---------------------------------------------------------------------- #
class MetricsLog:
    """The per-step metrics CSV (``epoch, step, d_loss, g_loss, d_real, d_fake``).

    Rows are appended and flushed one by one, so the file can be followed
    during training (``tail -f``). ``truncate(step)``
    drops rows after ``step``, so a resumed run continues the file from its
    checkpoint without duplicate steps.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle = None
        self._writer = None

    def truncate(self, last_step: int) -> None:
        """Keep only the rows with ``step <= last_step`` (all rows when the file is new)."""
        rows = [row for row in read_metrics(self.path) if int(row["step"]) <= last_step]
        with atomic_path(self.path) as temporary:
            with temporary.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(CSV_COLUMNS)
                for row in rows:
                    writer.writerow([row[column] for column in CSV_COLUMNS])

    def append(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Write one row; ``epoch`` and ``step`` count from 1."""
        if self._writer is None:
            new_file = not self.path.exists() or self.path.stat().st_size == 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", newline="")
            self._writer = csv.writer(self._handle)
            if new_file:
                self._writer.writerow(CSV_COLUMNS)
        self._writer.writerow([epoch, step, *(repr(float(metrics[name])) for name in METRIC_NAMES)])
        self._handle.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._writer = None


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Read the metrics CSV into a list of rows (``epoch`` and ``step`` as int); [] if absent.

    A malformed last row (a run killed while writing it) is dropped with a
    warning; a malformed row elsewhere raises ValueError.
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != CSV_COLUMNS:
            raise ValueError(
                f"{path}: CSV columns {reader.fieldnames}; expected {list(CSV_COLUMNS)}"
            )
        raw_rows = list(reader)

    rows = []
    for index, row in enumerate(raw_rows):
        try:
            parsed: dict[str, float] = {"epoch": int(row["epoch"]), "step": int(row["step"])}
            parsed.update({name: float(row[name]) for name in METRIC_NAMES})
        except (TypeError, ValueError) as error:
            line = index + 2  # the header is line 1
            if index == len(raw_rows) - 1:
                logger.warning("%s: dropping the incomplete last row (line %d)", path, line)
                break
            raise ValueError(f"{path}: line {line} is not a metrics row ({error})") from error
        rows.append(parsed)
    return rows


def moving_average(values: Iterable[float], window: int) -> np.ndarray:
    """Return the trailing mean over ``window`` values (shorter at the start)."""
    values = np.asarray(list(values), dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_metrics(rows: Sequence[dict[str, float]], path: str | Path) -> Path:
    """Plot D and G losses (top) and mean D(x) and D(G(z)) (bottom) against the step."""
    # A Figure with its own Agg canvas draws off-screen without switching
    # the process-wide backend, so inline figures in a notebook keep working.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("plot_metrics: no metrics to plot")
    steps = np.array([row["step"] for row in rows])
    window = max(1, len(rows) // 50)
    figure = Figure(figsize=(8, 6))
    FigureCanvasAgg(figure)
    losses, outputs = figure.subplots(2, 1, sharex=True)
    for name, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        values = [row[name] for row in rows]
        line = losses.plot(steps, values, alpha=0.25, linewidth=0.8)[0]
        losses.plot(steps, moving_average(values, window), color=line.get_color(), label=label)
    losses.set_ylabel("loss")
    losses.legend()
    for name, label in (("d_real", "mean D(x)"), ("d_fake", "mean D(G(z))")):
        values = [row[name] for row in rows]
        line = outputs.plot(steps, values, alpha=0.25, linewidth=0.8)[0]
        outputs.plot(steps, moving_average(values, window), color=line.get_color(), label=label)
    outputs.set_ylim(0.0, 1.0)
    outputs.set_xlabel("step")
    outputs.set_ylabel("probability")
    outputs.legend()
    smoothing = "per step" if window == 1 else f"mean over {window} steps"
    figure.suptitle(f"GAN training metrics (lines: {smoothing})")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return Path(path)
