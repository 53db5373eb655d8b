"""benchmarks/gpu_check.py runs on the CPU at small sizes, prints its one table, and imports no Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_cpu_small() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "| measure" in out and "| fp32 | bf16 |" in out
    for row in ("training samples/s", "time to val MSE", "patch-wise", "fully convolutional", "archive model time"):
        assert row in out, row
    assert "'ray' imported: False" in out
