"""Calibrated confidence: the platform default fitted with a share of a data set's gold as the
job's gold, its calibration map fitted on that gold, measured on the other gold items.

For every data set folder (answers.csv + gold.csv, see /work/shared/datasets/README.md) and
every gold share, each of `--draws` seeded draws takes that share of the gold items as the
job's gold, fits `default_model()` with them clamped and without gold and keeps the one that
predicts that gold better, with its honest gold posteriors, as FitModel does
(`calibration.choose_fit`), fits the map on those (`fit_calibration`), and scores the other
gold items: expected calibration error (10 equal-width bins on the confidence of the chosen
label), accuracy, Brier score and log loss, raw (the chosen fit) and calibrated. "today"
is the default fitted without gold (what results carried before calibration), scored on the
same items. Calibration keeps every label, so "acc cal" is "acc raw". Prints
Markdown tables, one per gold share: each data set's mean over the draws, then the mean over
the data sets. crowd-kit's DawidSkene (no gold) is added where crowd-kit is installed.

Run: .venv/bin/python -m bench.calibration [--datasets DIR] [--only NAME ...]
     [--gold 0.05 0.1 0.2] [--draws 5]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.aggregation import DEFAULT_DATASETS, Dataset, find_datasets, md_table, read_dataset
from chalicelib.domain.aggregation import calibration as cal
from chalicelib.domain.aggregation.categorical import Encoded, argmax_first, default_model, encode

GOLD_SHARES = (0.05, 0.1, 0.2)
DRAWS = 5
SEED = 20261207
# The target at 10% gold.
TARGET_MEAN_ECE, TARGET_WORST_ECE, TARGET_ACCURACY_POINTS = 0.05, 0.10, 0.2
MEASURES = ("ece", "accuracy", "brier", "log_loss")


@dataclass
class Problem:
    """A data set as codes: the answers, and its gold items' codes and class codes."""

    name: str
    encoded: Encoded
    gold_items: np.ndarray
    gold_classes: np.ndarray
    today: np.ndarray  # the default fitted without gold: every item's posterior row


def problem(ds: Dataset) -> Problem:
    """Encode a data set (gold labels no answer gave become extra classes) and fit today's
    default on it without gold."""
    encoded = encode(ds.items, ds.workers, ds.labels, extra_classes=sorted(set(ds.gold.values())))
    item_rank = {item: rank for rank, item in enumerate(encoded.items_)}
    class_rank = {label: rank for rank, label in enumerate(encoded.classes_)}
    pairs = sorted((item_rank[t], class_rank[label]) for t, label in ds.gold.items()
                   if t in item_rank)
    codes = np.asarray(pairs, dtype=np.int64)
    today = default_model().fit_encoded(encoded).probas_array_
    return Problem(ds.name, encoded, codes[:, 0], codes[:, 1], today)


def scores(probas: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """ECE, accuracy, Brier score and log loss of posterior rows against the true classes;
    the chosen label is the first class within tie tolerance of the row maximum."""
    chosen = argmax_first(probas)
    correct = chosen == classes
    confidence = probas[np.arange(len(classes)), chosen]
    return {"ece": cal.expected_calibration_error(confidence, correct),
            "accuracy": float(correct.mean()), "brier": cal.brier_score(probas, classes),
            "log_loss": cal.log_loss(probas, classes)}


def split(p: Problem, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the job's gold, positions of the other gold items) in p.gold_items."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(p.gold_items))
    given = max(1, int(round(share * len(p.gold_items))))
    return np.sort(order[:given]), np.sort(order[given:])


def draw(p: Problem, share: float, seed: int,
         max_answers: int = cal.CROSS_FIT_MAX_ANSWERS) -> dict[str, Any]:
    """One draw: fit with the job's gold, calibrate on it, score the other gold items."""
    job, held = split(p, share, seed)
    gold_items, gold_classes = p.gold_items[job], p.gold_classes[job]
    start = time.perf_counter()
    chosen = cal.choose_fit(default_model, p.encoded, gold_items, gold_classes,
                            max_answers=max_answers)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    fitted = cal.fit_calibration(chosen.posteriors, gold_classes)
    calibrate_s = time.perf_counter() - start
    items, truth = p.gold_items[held], p.gold_classes[held]
    raw = chosen.model.probas_array_[items]
    return {"raw": scores(raw, truth), "calibrated": scores(fitted.apply(raw), truth),
            "today": scores(p.today[items], truth), "kind": fitted.kind, "gold": len(job),
            "clamped": chosen.gold_clamped, "held": len(held), "fit_s": fit_s,
            "calibrate_s": calibrate_s}


def crowdkit_scores(folder: Path, p: Problem) -> dict[str, float] | None:
    """crowd-kit DawidSkene's scores on every gold item (it takes no gold), or None when
    crowd-kit is not installed."""
    try:
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        return None
    from bench.aggregation import crowdkit_frame

    model = DawidSkene()
    model.fit_predict(crowdkit_frame(folder))
    rows = model.probas_.reindex([p.encoded.items_[i] for i in p.gold_items.tolist()])
    rows = rows.reindex(columns=p.encoded.classes_).fillna(0.0).to_numpy(dtype=np.float64)
    return scores(rows, p.gold_classes)


def run(folders: list[Path], shares: list[float], draws: int, crowdkit: bool = True,
        max_answers: int = cal.CROSS_FIT_MAX_ANSWERS) -> dict[str, Any]:
    """Every data set's draws at every share: {"sets": {name: {share: [draw, ...]}},
    "crowdkit": {name: scores or None}}."""
    out: dict[str, Any] = {"sets": {}, "crowdkit": {}}
    for folder in folders:
        p = problem(read_dataset(folder))
        out["sets"][p.name] = {share: [draw(p, share, SEED + d, max_answers)
                                        for d in range(draws)]
                               for share in shares}
        out["crowdkit"][p.name] = crowdkit_scores(folder, p) if crowdkit else None
        print(f"  {p.name} done", file=sys.stderr, flush=True)
    return out


def _mean(runs: list[dict[str, Any]], which: str, measure: str) -> float:
    return float(np.mean([r[which][measure] for r in runs]))


def table(results: dict[str, Any], share: float) -> str:
    """The Markdown table of one gold share: a row per data set (means over the draws), then
    the mean over the data sets."""
    header = ["data set", "gold / scored", "clamped", "map", "ECE today", "ECE raw", "ECE cal",
              "acc today %", "acc raw %", "acc cal %", "Brier raw", "Brier cal", "log loss raw",
              "log loss cal", "fit s", "calibrate s"]
    ck = any(results["crowdkit"].values())
    if ck:
        header += ["ck DS ECE", "ck DS acc %"]
    rows, per_set = [], []
    for name, by_share in results["sets"].items():
        runs = by_share[share]
        kinds = sorted({r["kind"] for r in runs})
        values = {f"{which} {m}": _mean(runs, which, m) for which in ("raw", "calibrated", "today")
                  for m in MEASURES}
        per_set.append(values)
        row = [name, f"{runs[0]['gold']:,} / {runs[0]['held']:,}",
               f"{sum(r['clamped'] for r in runs)}/{len(runs)}", "/".join(kinds)]
        row += _cells(values)
        row += [f"{np.mean([r['fit_s'] for r in runs]):.2f}",
                f"{np.mean([r['calibrate_s'] for r in runs]):.2f}"]
        if ck:
            found = results["crowdkit"].get(name)
            row += ([f"{found['ece']:.4f}", f"{100 * found['accuracy']:.2f}"] if found
                    else ["n/a", "n/a"])
        rows.append(row)
    mean = {key: float(np.mean([v[key] for v in per_set])) for key in per_set[0]}
    mean_row = ["**mean**", "", "", ""] + _cells(mean) + ["", ""]
    if ck:
        found_all = [v for v in results["crowdkit"].values() if v]
        mean_row += [f"{np.mean([v['ece'] for v in found_all]):.4f}",
                     f"{100 * np.mean([v['accuracy'] for v in found_all]):.2f}"]
    rows.append(mean_row)
    return md_table(header, rows)


def _cells(values: dict[str, float]) -> list[str]:
    return [f"{values['today ece']:.4f}", f"{values['raw ece']:.4f}",
            f"{values['calibrated ece']:.4f}",
            f"{100 * values['today accuracy']:.2f}", f"{100 * values['raw accuracy']:.2f}",
            f"{100 * values['calibrated accuracy']:.2f}", f"{values['raw brier']:.4f}",
            f"{values['calibrated brier']:.4f}", f"{values['raw log_loss']:.4f}",
            f"{values['calibrated log_loss']:.4f}"]


def verdict(results: dict[str, Any], share: float) -> dict[str, Any]:
    """The target's three checks at one share: mean ECE, worst ECE, and the largest drop of
    calibrated accuracy below today's default (in points)."""
    eces, drops, today, label_changes = {}, {}, {}, {}
    for name, by_share in results["sets"].items():
        runs = by_share[share]
        eces[name] = _mean(runs, "calibrated", "ece")
        today[name] = _mean(runs, "today", "ece")
        drops[name] = 100 * (_mean(runs, "today", "accuracy") - _mean(runs, "calibrated", "accuracy"))
        label_changes[name] = 100 * (_mean(runs, "raw", "accuracy")
                                     - _mean(runs, "calibrated", "accuracy"))
    worst = max(eces, key=eces.__getitem__)
    mean_ece = float(np.mean(list(eces.values())))
    most = max(drops, key=drops.__getitem__)
    today_worst = max(today, key=today.__getitem__)
    return {"today_mean_ece": float(np.mean(list(today.values()))), "today_worst": today_worst,
            "today_worst_ece": today[today_worst], "mean_ece": mean_ece, "worst": worst, "worst_ece": eces[worst],
            "largest_drop_set": most, "largest_drop": drops[most],
            "largest_map_drop": max(label_changes.values()),
            "ece_met": mean_ece <= TARGET_MEAN_ECE and eces[worst] <= TARGET_WORST_ECE,
            "accuracy_met": drops[most] <= TARGET_ACCURACY_POINTS}


def report(results: dict[str, Any], shares: list[float], draws: int) -> str:
    """Every share's table with its verdict line."""
    parts = []
    for share in shares:
        v = verdict(results, share)
        parts.append(f"\n### {100 * share:g}% of the gold as the job's gold ({draws} draws)\n")
        parts.append(table(results, share))
        parts.append(f"\nToday's default (no gold): mean ECE {v['today_mean_ece']:.4f}, worst "
                     f"{v['today_worst']} {v['today_worst_ece']:.4f}. "
                     f"Calibrated: mean ECE {v['mean_ece']:.4f}, worst {v['worst']} "
                     f"{v['worst_ece']:.4f}; largest accuracy drop below today's default "
                     f"{v['largest_drop']:+.2f} points ({v['largest_drop_set']}), below the same "
                     f"fit uncalibrated {v['largest_map_drop']:+.2f}. Target: ECE (mean <= "
                     f"{TARGET_MEAN_ECE}, none above {TARGET_WORST_ECE}) "
                     f"{'met' if v['ece_met'] else 'not met'}; accuracy (drop <= "
                     f"{TARGET_ACCURACY_POINTS} points) {'met' if v['accuracy_met'] else 'not met'}.")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                        help=f"folder of data set folders (default {DEFAULT_DATASETS})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these data sets")
    parser.add_argument("--gold", nargs="+", type=float, default=list(GOLD_SHARES),
                        help="shares of the gold items given to the job (default 0.05 0.1 0.2)")
    parser.add_argument("--draws", type=int, default=DRAWS, help="seeded draws per share")
    parser.add_argument("--no-crowdkit", action="store_true",
                        help="leave crowd-kit's DawidSkene out even where it is installed")
    parser.add_argument("--no-cross-fit", action="store_true",
                        help="do what rounds above "
                             f"{cal.CROSS_FIT_MAX_ANSWERS:,} answers do: the clamped fit, its "
                             "map on gold_posteriors, no refits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(find_datasets(args.datasets, args.only), args.gold, args.draws,
                  crowdkit=not args.no_crowdkit,
                  max_answers=0 if args.no_cross_fit else cal.CROSS_FIT_MAX_ANSWERS)
    print(f"# Calibration benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}\n")
    print(f"`{' '.join(['python -m bench.calibration'] + (argv if argv is not None else sys.argv[1:]))}` "
          f"on Python {platform.python_version()}, numpy {np.__version__}; seeds {SEED}.."
          f"{SEED + args.draws - 1}.")
    print(report(results, args.gold, args.draws))
    print(f"\nTotal run time {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
