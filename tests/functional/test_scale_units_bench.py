"""bench/scale_units.py at a tiny size, in a process of its own (the big-job run it records
reads its size when its module is imported): every phase is billed, the harness's own writes
are kept out of the job's units, and the per-item figures are DynamoDB's."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| phase") and len(cells) == 9:
            rows[re.sub(r"\d+", "N", cells[0])] = cells[1:]
    return rows


def test_a_tiny_uploaded_job_is_billed_phase_by_phase():
    run = subprocess.run([sys.executable, "-m", "bench.scale_units", "--items", "60"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ended done" in run.stdout, run.stdout
    rows = _rows(run.stdout)
    ingest = rows["ingest N items"]
    # an item and its pool index entry, a write unit each, and a range's count now and then
    assert 2.0 <= float(ingest[4]) <= 2.5 and ingest[6] != "fixed"
    counted = rows["N answers written, counted"]
    # every answer's counted mark is a transactional write (2 units) on its item, at least
    assert float(counted[4]) >= 2 * 3
    assert rows["register N workers"][6] == "fixed"
    assert float(rows["round closes, state machine runs"][3]) > 0
    harness = re.search(r"wrote for ([\d,]+) of them \((\d+) BatchWriteItem calls, ([\d,]+) "
                        r"WRU, not billed above\)", run.stdout)
    assert harness and harness.group(1) == "120" and int(harness.group(2)) > 0, run.stdout
