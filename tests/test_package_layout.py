"""The scratch package must stay importable without TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRATCH_MODULES = sorted(
    ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    for path in (PROJECT_ROOT / "scratch").rglob("*.py")
    if path.name != "__init__.py"
)

# Importing every scratch module, then listing any framework module that came with it.
PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
frameworks = ('tensorflow', 'keras', 'jax', 'torch')
loaded = sorted(m for m in sys.modules if m.split('.')[0] in frameworks)
print(','.join(loaded))
"""


def test_scratch_modules_found() -> None:
    assert "scratch.layers.conv2d" in SCRATCH_MODULES
    assert "scratch.gan" in SCRATCH_MODULES


def test_scratch_imports_no_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *SCRATCH_MODULES],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"importing scratch modules failed:\n{result.stderr}"
    assert result.stdout.strip() == "", (
        f"scratch modules imported framework modules: {result.stdout.strip()[:300]}"
    )


@pytest.mark.parametrize("module", ["tensorflow", "keras"])
def test_probe_detects_framework(module: str) -> None:
    """The probe itself must notice a framework import, or the test above proves nothing."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert module in result.stdout
