"""Categorical aggregation: our engine against Toloka's crowd-kit on public crowdsourcing data.

For every data set folder (answers.csv + gold.csv, see /work/shared/datasets/README.md) it fits
our methods (chalicelib.domain.aggregation.categorical, unsupervised, including the
platform default `default_model()`) and crowd-kit's
MajorityVote, Wawa, DawidSkene, OneCoinDawidSkene, GLAD, MACE, ZeroBasedSkill and MMSR in the
same process, one method after another: one warm-up fit, then one fit timed with
time.perf_counter. Accuracy and calibration count gold tasks only. Prints Markdown tables.

Run: .venv/bin/python -m bench.aggregation [--datasets DIR] [--only NAME ...] [--skip-slow]
     .venv/bin/python -m bench.aggregation --synthetic   (1M-answer scale test of our DS and default)
Needs the bench requirements: .venv/bin/pip install -r requirements-bench.txt
"""
from __future__ import annotations

import argparse
import csv
import datetime
import gc
import hashlib
import importlib
import platform
import resource
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OURS_MODULE = "chalicelib.domain.aggregation.categorical"
SLOW = {"ck GLAD", "ck MACE", "ck MMSR"}
GOLD_EVERY = 10  # "ours DS + gold 10%": every 10th gold task (sorted by id) is given to the fit


# ----------------------------------------------------------------------------------- data
@dataclass
class Dataset:
    name: str
    items: list[str]
    workers: list[str]
    labels: list[str]
    gold: dict[str, str]


def read_dataset(folder: Path) -> Dataset:
    """Every column as str (csv module); nothing filtered or de-duplicated."""
    items, workers, labels = [], [], []
    with open(folder / "answers.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            items.append(row["task"])
            workers.append(row["worker"])
            labels.append(row["label"])
    with open(folder / "gold.csv", newline="", encoding="utf-8") as handle:
        gold = {row["task"]: row["label"] for row in csv.DictReader(handle)}
    return Dataset(folder.name, items, workers, labels, gold)


def crowdkit_frame(folder: Path) -> Any:
    import pandas as pd

    frame = pd.read_csv(folder / "answers.csv", dtype=str, keep_default_na=False, na_filter=False)
    return frame[["task", "worker", "label"]]


def find_datasets(root: Path, only: list[str] | None) -> list[Path]:
    folders = sorted(p for p in root.iterdir()
                     if p.is_dir() and (p / "answers.csv").is_file() and (p / "gold.csv").is_file())
    if only:
        missing = set(only) - {p.name for p in folders}
        if missing:
            sys.exit(f"unknown data set(s) {sorted(missing)} in {root}")
        folders = [p for p in folders if p.name in only]
    return folders


# -------------------------------------------------------------------------------- metrics
def accuracy(predicted: dict[str, Any], gold: dict[str, str]) -> float:
    """Share of gold tasks whose predicted label equals the gold label (missing = wrong)."""
    return sum(predicted.get(task) == label for task, label in gold.items()) / len(gold)


def expected_mv_random_ties(ds: Dataset) -> float:
    """Expected MV accuracy on gold when ties are broken uniformly at random."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for item, label in zip(ds.items, ds.labels):
        votes[item][label] += 1
    total = 0.0
    for task, label in ds.gold.items():
        counts = votes.get(task)
        if not counts:
            continue
        top = max(counts.values())
        winners = [lab for lab, n in counts.items() if n == top]
        total += (label in winners) / len(winners)
    return total / len(ds.gold)


def mv_tie_share(ds: Dataset) -> float:
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for item, label in zip(ds.items, ds.labels):
        votes[item][label] += 1
    ties = 0
    for task in ds.gold:
        counts = votes.get(task)
        if counts:
            top = max(counts.values())
            ties += sum(n == top for n in counts.values()) > 1
    return ties / len(ds.gold)


def ece(probas: dict[str, dict[str, float]], gold: dict[str, str], bins: int = 10) -> float:
    """Expected calibration error: 10 equal-width bins over the max posterior, gold tasks only.

    Prediction = argmax of the posterior, confidence = its probability."""
    counts = [0] * bins
    conf_sum = [0.0] * bins
    hit_sum = [0] * bins
    n = 0
    for task, label in gold.items():
        post = probas.get(task)
        if not post:
            continue
        best = max(post, key=post.__getitem__)
        conf = float(post[best])
        b = min(int(conf * bins), bins - 1)
        counts[b] += 1
        conf_sum[b] += conf
        hit_sum[b] += best == label
        n += 1
    if not n:
        return float("nan")
    return sum(abs(hit_sum[b] - conf_sum[b]) / n for b in range(bins) if counts[b])


# -------------------------------------------------------------------------------- methods
@dataclass
class Outcome:
    labels: dict[str, Any] | None = None
    probas: dict[str, dict[str, float]] | None = None
    seconds: float | None = None
    eval_gold: dict[str, str] | None = None  # gold subset to score on (None = all gold)
    error: str | None = None  # "n/a" (not available) or "ERR ..." text
    extra: dict[str, Any] = field(default_factory=dict)


def load_ours() -> tuple[dict[str, Any], str]:
    """Our classes by name (None where missing) and a note on what was found."""
    names = ("MajorityVote", "WeightedMajorityVote", "DawidSkene", "OneCoinDawidSkene",
             "default_model")
    try:
        module = importlib.import_module(OURS_MODULE)
    except Exception as exc:  # missing or half-written module: columns print n/a
        return {name: None for name in names}, f"`{OURS_MODULE}` not importable ({type(exc).__name__}: {exc})"
    found = {name: getattr(module, name, None) for name in names}
    missing = [name for name, cls in found.items() if cls is None]
    source = Path(module.__file__).read_bytes()
    note = f"`{OURS_MODULE}` imported (sha256 of its source {hashlib.sha256(source).hexdigest()[:12]})" + (f"; missing: {', '.join(missing)}" if missing else "")
    return found, note


def time_fit(fit: Callable[[], Any]) -> tuple[Any, float]:
    fit()  # warm-up
    gc.collect()
    start = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - start


def run_ours(cls: Any, ds: Dataset, gold: dict[str, str] | None = None) -> Outcome:
    if cls is None:
        return Outcome(error="n/a")
    try:
        model, seconds = time_fit(lambda: cls().fit(ds.items, ds.workers, ds.labels, gold=gold))
        return Outcome(dict(model.labels_), _probas(getattr(model, "probas_", None)), seconds)
    except Exception as exc:
        return Outcome(error=f"ERR {type(exc).__name__}: {exc}")


def _probas(raw: Any) -> dict[str, dict[str, float]] | None:
    if raw is None:
        return None
    if hasattr(raw, "to_dict"):  # pandas DataFrame indexed by task, one column per label
        return {task: {str(k): float(v) for k, v in row.items()}
                for task, row in raw.to_dict(orient="index").items()}
    return {task: {str(k): float(v) for k, v in post.items()} for task, post in raw.items()}


def run_crowdkit(name: str, frame: Any) -> Outcome:
    from crowdkit import aggregation as ck

    cls = getattr(ck, name)

    def fit() -> Any:
        model = cls()
        return model, model.fit_predict(frame)

    try:
        (model, labels), seconds = time_fit(fit)
        probas = getattr(model, "probas_", None)  # what fit_predict_proba returns, where defined
        return Outcome({str(k): v for k, v in labels.to_dict().items()}, _probas(probas), seconds)
    except Exception as exc:
        return Outcome(error=f"ERR {type(exc).__name__}: {str(exc)[:80]}")


CK_METHODS = ["MajorityVote", "Wawa", "DawidSkene", "OneCoinDawidSkene", "GLAD", "MACE",
              "ZeroBasedSkill", "MMSR"]
CK_SHORT = {"MajorityVote": "MV", "DawidSkene": "DS", "OneCoinDawidSkene": "OneCoinDS",
            "ZeroBasedSkill": "ZBS"}
COLUMNS = (["ours MV", "ours WMV", "ours DS", "ours default", "ours OneCoinDS", "ours DS + gold 10%",
            "MV random-tie (expected)"]
           + [f"ck {CK_SHORT.get(m, m)}" for m in CK_METHODS])


def run_dataset(folder: Path, ours: dict[str, Any], skip_slow: bool) -> tuple[Dataset, dict[str, Outcome]]:
    ds = read_dataset(folder)
    frame = crowdkit_frame(folder)
    out: dict[str, Outcome] = {}
    for column, cls_name in (("ours MV", "MajorityVote"), ("ours WMV", "WeightedMajorityVote"),
                             ("ours DS", "DawidSkene"), ("ours default", "default_model"),
                             ("ours OneCoinDS", "OneCoinDawidSkene")):
        out[column] = run_ours(ours[cls_name], ds)
    given = {t: ds.gold[t] for t in sorted(ds.gold)[::GOLD_EVERY]}
    held_out = {t: lab for t, lab in ds.gold.items() if t not in given}
    out["ours DS + gold 10%"] = run_ours(ours["DawidSkene"], ds, gold=given)
    out["ours DS + gold 10%"].eval_gold = held_out
    out["MV random-tie (expected)"] = Outcome(extra={"accuracy": expected_mv_random_ties(ds)})
    for method in CK_METHODS:
        column = f"ck {CK_SHORT.get(method, method)}"
        if skip_slow and column in SLOW:
            out[column] = Outcome(error="skip")
            continue
        out[column] = run_crowdkit(method, frame)
        print(f"  {ds.name}: {column} done"
              + (f" in {out[column].seconds:.2f} s" if out[column].seconds is not None else
                 f" ({out[column].error})"), file=sys.stderr, flush=True)
    return ds, out


# ------------------------------------------------------------------------------- printing
def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def acc_of(ds: Dataset, outcome: Outcome) -> float | None:
    if "accuracy" in outcome.extra:
        return outcome.extra["accuracy"]
    if outcome.labels is None:
        return None
    return accuracy(outcome.labels, outcome.eval_gold if outcome.eval_gold is not None else ds.gold)


def cell(outcome: Outcome, value: float | None, fmt: str) -> str:
    if value is not None:
        return format(value, fmt)
    return (outcome.error or "n/a").split(":")[0] if outcome.error else "n/a"


def print_tables(results: list[tuple[Dataset, dict[str, Outcome]]], ours_note: str,
                 ours_doc: str) -> None:
    # Table 1: accuracy
    rows, sums = [], {c: [] for c in COLUMNS}
    for ds, out in results:
        row = [ds.name]
        for c in COLUMNS:
            value = acc_of(ds, out[c])
            if value is not None:
                sums[c].append(100 * value)
            row.append(cell(out[c], None if value is None else 100 * value, ".2f"))
        rows.append(row)
    mean_row = ["**mean**"]
    for c in COLUMNS:
        vals = sums[c]
        if not vals:
            mean_row.append("n/a")
        else:
            mean_row.append(f"{sum(vals) / len(vals):.2f}" + ("" if len(vals) == len(results)
                                                              else f" ({len(vals)} sets)"))
    rows.append(mean_row)
    print("\n### Table 1: accuracy on gold tasks (%)\n")
    print(md_table(["data set"] + COLUMNS, rows))
    print(f"\n- ours: {ours_note}. Our methods are fitted without gold (unsupervised), except "
          f"\"ours DS + gold 10%\": every {GOLD_EVERY}th gold task in sorted id order is passed "
          "as `gold=` and accuracy counts only the remaining ~90% of gold tasks (so that column is "
          "scored on a different subset; see table 5).")
    print(f"- ours MV tie rule (engine docstring): {ours_doc or 'n/a'}")
    print("- \"MV random-tie (expected)\": expected MV accuracy when ties are broken uniformly at "
          "random, computed from the vote counts (the fair MV reference). Share of gold tasks "
          "that are MV ties: " + ", ".join(f"{ds.name} {100 * mv_tie_share(ds):.1f}%"
                                           for ds, _ in results) + ".")
    print("- ck = crowd-kit with default parameters; its MV breaks ties by column order (idxmax, "
          "sorted label order under pandas 2.2). `skip` = skipped by --skip-slow; `ERR` = raised; "
          "`n/a` = our class not available.")

    # Table 2: time
    timed = [c for c in COLUMNS if c != "MV random-tie (expected)"]
    rows = []
    for ds, out in results:
        rows.append([ds.name, f"{len(ds.items):,}"] + [cell(out[c], out[c].seconds, ".3f") for c in timed])
    print("\n### Table 2: wall time of one fit after one warm-up (s)\n")
    print(md_table(["data set", "answers"] + timed, rows))
    print("\n- time.perf_counter around one `fit` (ours) / `fit_predict` (crowd-kit) after one "
          "untimed warm-up fit; methods run one after another in one process.")

    # Table 3: DS time ratio
    rows = []
    for ds, out in results:
        b = out["ck DS"].seconds
        row = [ds.name]
        for c in ("ours DS", "ours default"):
            a = out[c].seconds
            row += [cell(out[c], a, ".3f"), f"{a / b:.3f}" if a is not None and b else "n/a"]
        rows.append(row + [cell(out["ck DS"], b, ".3f")])
    print("\n### Table 3: Dawid-Skene time, ours vs crowd-kit\n")
    print(md_table(["data set", "ours DS (s)", "ours DS / ck", "ours default (s)",
                    "ours default / ck", "ck DS (s)"], rows))
    print("\n- ratio < 1 means ours is faster. \"ours default\" = `default_model()` (engine "
          f"{_default_params_note()}).")

    # Table 4: ECE
    rows = []
    for ds, out in results:
        row = [ds.name]
        for c in ("ours DS", "ours default", "ck DS"):
            o = out[c]
            if o.probas is None:
                row += [cell(o, None, ".4f"), cell(o, None, ".2f")]
            else:
                row += [f"{ece(o.probas, ds.gold):.4f}", f"{100 * acc_of(ds, o):.2f}"]
        rows.append(row)
    print("\n### Table 4: expected calibration error on gold tasks (lower is better)\n")
    print(md_table(["data set", "ours DS ECE", "ours DS acc %", "ours default ECE",
                    "ours default acc %", "ck DS ECE", "ck DS acc %"], rows))
    print("\n- ECE: 10 equal-width bins over the max posterior (confidence of the argmax label), "
          "sum over bins of |accuracy - mean confidence| weighted by bin share. Ours: `probas_`; "
          "crowd-kit: `DawidSkene.probas_` (what `fit_predict_proba` returns).")

    # Table 5: gold-assisted DS on the same held-out subset
    rows = []
    for ds, out in results:
        held = out["ours DS + gold 10%"].eval_gold or {}
        def on_held(o: Outcome) -> str:
            return f"{100 * accuracy(o.labels, held):.2f}" if o.labels is not None and held else cell(o, None, "")
        rows.append([ds.name, f"{len(held):,}", on_held(out["ours DS"]),
                     on_held(out["ours DS + gold 10%"]), on_held(out["ck DS"])])
    print("\n### Table 5: Dawid-Skene with 10% gold, scored on the held-out 90% of gold (%)\n")
    print(md_table(["data set", "held-out gold", "ours DS (no gold)", "ours DS + gold 10%",
                    "ck DS (no gold)"], rows))


def _default_params_note() -> str:
    """The engine's DEFAULT and DEFAULT_PARAMS as text, or n/a."""
    module = sys.modules.get(OURS_MODULE)
    default = getattr(module, "DEFAULT", None)
    if default is None:
        return "n/a"
    described = f"`{default.__name__}(**{getattr(module, 'DEFAULT_PARAMS', {})})`"
    if hasattr(module, "HeldOutChoice"):
        return (f"{described} or `OneCoinDawidSkene()`, whichever predicts held-out answers "
                f"better; the check costs 5 extra fits per candidate and is skipped above "
                f"50,000 answers, so trec_rf10 runs the Dawid-Skene alone")
    return described


def ours_tie_doc(ours: dict[str, Any]) -> str:
    """Sentences of the engine's docstrings that state the MV tie rule and the class order."""
    cls = ours.get("MajorityVote")
    if cls is None:
        return ""
    module = sys.modules.get(cls.__module__)
    sources = [cls, module] + [getattr(module, name, None) for name in ("argmax_first", "encode")]
    found = []
    for obj in sources:
        doc = " ".join((getattr(obj, "__doc__", None) or "").split())
        found += [s.strip().rstrip(".") for s in doc.split(". ")
                  if ("tie" in s.lower() or "order" in s.lower()) and s.strip().rstrip(".") not in found]
    return "; ".join(found) + (" (the benchmark passes no label_order)" if found else "")


# ------------------------------------------------------------------------------ synthetic
def synthetic_problem(n_items: int = 100_000, n_classes: int = 5, per_item: int = 10,
                      n_workers: int = 20_000, seed: int = 20261128,
                      beta: tuple[float, float] = (4.0, 2.0)):
    """Items with uniform true classes; each gets `per_item` distinct random workers; a worker
    answers correctly with its Beta-drawn accuracy, otherwise a uniform wrong class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    skill = rng.beta(*beta, n_workers)
    who = rng.integers(0, n_workers, (n_items, per_item))
    while True:  # redraw rows that picked a worker twice
        srt = np.sort(who, axis=1)
        bad = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if not len(bad):
            break
        who[bad] = rng.integers(0, n_workers, (len(bad), per_item))
    correct = rng.random((n_items, per_item)) < skill[who]
    wrong = (truth[:, None] + rng.integers(1, n_classes, (n_items, per_item))) % n_classes
    answer = np.where(correct, truth[:, None], wrong)
    item_ids = [f"i{i}" for i in range(n_items)]
    class_ids = [f"c{k}" for k in range(n_classes)]
    items = [item_ids[i] for i in np.repeat(np.arange(n_items), per_item)]
    workers = [f"w{w}" for w in who.ravel()]
    labels = [class_ids[a] for a in answer.ravel()]
    gold = {item_ids[i]: class_ids[truth[i]] for i in range(n_items)}
    return items, workers, labels, gold, float(skill.mean())


def run_synthetic(with_crowdkit: bool) -> None:
    start = time.perf_counter()
    items, workers, labels, gold, mean_skill = synthetic_problem()
    print(f"\n### Synthetic scale test\n\n{len(items):,} answers, {len(gold):,} items, 5 classes, "
          f"10 distinct workers per item, 20,000 workers, accuracy ~ Beta(4, 2) (mean drawn "
          f"{mean_skill:.3f}), wrong answers uniform over the other classes, seed 20261128; "
          f"generated in {time.perf_counter() - start:.1f} s.\n", flush=True)
    ours, note = load_ours()
    rows = []

    def measure(label: str, fit: Callable[[], Any], get_labels: Callable[[Any], dict]) -> None:
        try:
            gc.collect()
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            model = fit()
            seconds = time.perf_counter() - t0
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            acc = accuracy(get_labels(model), gold)
            del model
            gc.collect()
            tracemalloc.start()
            fit()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append([label, f"{seconds:.2f}", f"{(rss1 - rss0) / 1024:.0f}",
                         f"{peak / 2**20:.0f}", f"{100 * acc:.2f}"])
        except Exception as exc:
            rows.append([label, f"ERR {type(exc).__name__}: {exc}", "", "", ""])
        print(f"  synthetic: {label} done", file=sys.stderr, flush=True)

    cls = ours["DawidSkene"]
    if cls is None:
        rows.append(["ours DS", "n/a", "n/a", "n/a", "n/a"])
    else:
        measure("ours DS", lambda: cls().fit(items, workers, labels), lambda m: m.labels_)
    if ours.get("default_model") is not None:
        make = ours["default_model"]
        measure("ours default", lambda: make().fit(items, workers, labels), lambda m: m.labels_)
    if with_crowdkit:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        frame = pd.DataFrame({"task": items, "worker": workers, "label": labels})
        measure("ck DS (reference)", lambda: DawidSkene().fit(frame),
                lambda m: {str(k): v for k, v in m.labels_.to_dict().items()})
    print(md_table(["method", "wall time (s)", "ru_maxrss delta (MiB)", "tracemalloc peak (MiB)",
                    "accuracy (%)"], rows))
    print(f"\n- ours: {note}. One cold fit timed with time.perf_counter (no warm-up: at this "
          "size it would cost as much as the measurement), input = Python lists of str.")
    print("- ru_maxrss delta: growth of the process's peak resident set during that timed fit "
          "(a lower bound on the fit's own peak, since memory already held counts as headroom).")
    print("- tracemalloc peak: peak of Python + numpy allocations traced during a second, "
          "separate fit (tracemalloc slows it, so it is not timed). crowd-kit's input DataFrame "
          "is built before measuring and not counted.")


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                        help=f"folder of data set folders (default {DEFAULT_DATASETS})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these data sets")
    parser.add_argument("--skip-slow", action="store_true",
                        help="skip crowd-kit GLAD, MACE and MMSR (minutes on trec_rf10)")
    parser.add_argument("--synthetic", action="store_true",
                        help="instead of the data sets, time our DS (and crowd-kit DS for "
                             "reference) on a seeded 1,000,000-answer synthetic problem")
    parser.add_argument("--no-crowdkit-synthetic", action="store_true",
                        help="with --synthetic, do not run crowd-kit DS as a reference")
    args = parser.parse_args(argv)

    import crowdkit
    import numpy
    import pandas
    import sklearn

    print(f"# Aggregation benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}\n")
    print(f"`{' '.join(['python -m bench.aggregation'] + (argv if argv is not None else sys.argv[1:]))}` "
          f"on Python {platform.python_version()}, {platform.machine()}; crowd-kit "
          f"{getattr(crowdkit, '__version__', '1.4.2?')}, pandas {pandas.__version__}, "
          f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}.")
    if args.synthetic:
        run_synthetic(with_crowdkit=not args.no_crowdkit_synthetic)
        return
    ours, note = load_ours()
    folders = find_datasets(args.datasets, args.only)
    results = []
    total = time.perf_counter()
    for folder in folders:
        print(f"{folder.name} ...", file=sys.stderr, flush=True)
        results.append(run_dataset(folder, ours, args.skip_slow))
    print_tables(results, note, ours_tie_doc(ours))
    print(f"\nTotal run time {time.perf_counter() - total:.0f} s (each method fitted twice: warm-up + timed).")


if __name__ == "__main__":
    main()
