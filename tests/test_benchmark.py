"""The throughput benchmark's plumbing, on one tiny step (its timings are not checked)."""

from __future__ import annotations

import pytest
from conftest import PROJECT_ROOT


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_benchmark_reports_both_backends(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    from benchmarks.bench_throughput import format_report, run_benchmark

    results = run_benchmark("dcgan", batch_size=4, steps=1, warmup=1, dtype=dtype)
    report = format_report(results, "dcgan", dtype)

    assert sorted(results) == ["keras", "scratch"]
    for result in results.values():
        assert result.steps == 1
        assert result.seconds > 0
    assert "keras / scratch throughput ratio" in report
