"""benchmarks/gpu_check.py runs on the CPU at small sizes, prints its one table, and imports no Ray;
every script and module its docstring names exists."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_cpu_small() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "| measure" in out and "| fp32 | bf16 |" in out
    for row in ("training samples/s", "time to val MSE", "patch-wise", "fully convolutional", "archive model time"):
        assert row in out, row
    assert "'ray' imported: False" in out


def test_docstring_names_only_what_exists() -> None:
    doc = ast.get_docstring(ast.parse(SCRIPT.read_text())) or ""
    scripts = set(re.findall(r"[\w/]+\.py\b", doc))
    modules = set(re.findall(r"\bsmray(?:\.\w+)+", doc))
    assert "benchmarks/gpu_check.py" in scripts or "gpu_check.py" in " ".join(scripts)
    for path in scripts:
        assert (REPO / path).exists() or (REPO / "benchmarks" / path).exists(), path
    for name in modules:  # a module, or an attribute of one (smray.patches.sample_day)
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr)  # AttributeError: the docstring names something that is not there
            break
        else:
            raise AssertionError(f"{name}: no such module")
