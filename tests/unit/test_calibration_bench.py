"""bench/calibration.py on a tiny seeded crowd: the draws split the gold as asked, the maps
never change a label, the tables and the target's verdict come out of the same numbers."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bench import calibration as bench
from bench.aggregation import synthetic_problem


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    folder = root / "tiny"
    folder.mkdir()
    items, workers, labels, gold, _ = synthetic_problem(n_items=300, n_classes=3, per_item=3,
                                                        n_workers=30, seed=4)
    with open(folder / "answers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "worker", "label"])
        writer.writerows(zip(items, workers, labels))
    with open(folder / "gold.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "label"])
        writer.writerows(sorted(gold.items()))
    return root


def test_the_draws_split_the_gold_and_keep_every_label(datasets: Path) -> None:
    results = bench.run([datasets / "tiny"], [0.1, 0.2], draws=2, crowdkit=False)
    runs = results["sets"]["tiny"]
    assert [(r["gold"], r["held"]) for r in runs[0.1]] == [(30, 270)] * 2
    assert [(r["gold"], r["held"]) for r in runs[0.2]] == [(60, 240)] * 2
    for draw in runs[0.1] + runs[0.2]:
        assert draw["calibrated"]["accuracy"] == draw["raw"]["accuracy"]
        assert 0 <= draw["calibrated"]["ece"] <= 1 and draw["kind"] in ("identity", "temperature",
                                                                        "platt", "binning",
                                                                        "isotonic")
    first, second = (bench.split(bench.problem(bench.read_dataset(datasets / "tiny")), 0.1, seed)
                     for seed in (bench.SEED, bench.SEED + 1))
    assert len(set(first[0]) & set(first[1])) == 0 and not np.array_equal(first[0], second[0])
    verdict = bench.verdict(results, 0.1)
    assert verdict["mean_ece"] == pytest.approx(np.mean([r["calibrated"]["ece"] for r in runs[0.1]]))


def test_the_command_prints_a_table_and_the_verdict_per_gold_share(
        datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--datasets", str(datasets), "--gold", "0.1", "0.2", "--draws", "2",
                "--no-crowdkit"])
    out = capsys.readouterr().out
    assert "### 10% of the gold as the job's gold (2 draws)" in out
    assert "### 20% of the gold as the job's gold (2 draws)" in out
    assert "| tiny | 30 / 270 |" in out and "| tiny | 60 / 240 |" in out
    assert out.count("| **mean** |") == 2 and out.count("Target: ECE (mean <= 0.05, none above 0.1)") == 2


def test_the_scores_on_known_values() -> None:
    probas = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    truth = np.array([0, 1, 1])
    got = bench.scores(probas, truth)
    assert got["accuracy"] == pytest.approx(2 / 3)
    # Bins: 0.9 (right), 0.6 (wrong), 0.7 (right): |0.9-1| + |0.6-0| + |0.7-1|, over 3.
    assert got["ece"] == pytest.approx((0.1 + 0.6 + 0.3) / 3)
    assert got["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.4) + np.log(0.7)) / 3)
