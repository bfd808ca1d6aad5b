"""Adaptive redundancy replayed on real answers: answers spent and accuracy vs fixed full overlap.

For every data set in ../shared/datasets (see bench/aggregation.py) the recorded answers are
replayed in the CSV's order through a simulated marketplace that offers an item's next
recorded answer only while chalicelib.domain.redundancy.wants_more says the item wants one;
an answer the item no longer wants is skipped (not spent). Confidence (the highest class
posterior) comes from the aggregation model refitted on the answers accepted so far every
R accepted answers (R = max(200, 2% of the set's answers) unless --refit-every is given).

Confidence between refits (--confidence, both by default):
  fit     the posteriors of the last fit; an item not in the last fit has confidence None
          (so it keeps taking answers up to max). This is the plain reading of the issue.
  online  what jobs use (chalicelib.domain.adaptive.OnlineModel): the last fit's class priors
          and worker confusion matrices (a worker not in the fit gets the fit's mean confusion
          matrix) applied to all of the item's accepted answers, including those after the
          fit: a one-item E-step, no refit. At a refit it equals the fitted posteriors.

Final accuracy: the platform default model (default_model(), unsupervised) fitted once on
all accepted answers, scored on gold tasks. Baseline "full": the same model on every
recorded answer. Full overlap means all recorded answers, often more than max per item
(up to 39 on bluebird), so the cap at max is part of what is measured. Budget is not
modelled (every wanted answer is affordable).

Run: .venv/bin/python -m bench.adaptive [--only NAME ...] [--refit-every R]
     [--confidence fit online] [--refit-model default|ds]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


if __package__ in (None, ""):  # allow `python bench/adaptive.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.aggregation import DEFAULT_DATASETS, accuracy, find_datasets, read_dataset  # noqa: E402
from chalicelib.domain.adaptive import OnlineModel, refit_every  # noqa: E402
from chalicelib.domain.redundancy import AdaptiveRedundancy, wants_more  # noqa: E402
from chalicelib.domain.aggregation.categorical import (  # noqa: E402
    default_dawid_skene, default_model)

POLICIES = [AdaptiveRedundancy(2, 10, 0.99), AdaptiveRedundancy(2, 10, 0.95),
            AdaptiveRedundancy(2, 5, 0.9)]
MAX_SHARE = 0.65      # target: at most 65% of the answers ...
MAX_LOSS_POINTS = 1.0  # ... and at most 1 accuracy point below full overlap
REFIT_MODELS: dict[str, Callable[[], object]] = {"default": default_model,
                                                 "ds": default_dawid_skene}


def default_refit_every(n_answers: int) -> int:
    return refit_every(n_answers)


@dataclass
class ReplayResult:
    accepted: list[int]       # indices of the recorded answers that were spent, in order
    counts: dict[str, int]    # item -> answers accepted
    refits: int


def replay(items: Sequence[str], workers: Sequence[str], labels: Sequence[str],
           policy: AdaptiveRedundancy, refit_every: int,
           make_model: Callable[[], object] = default_model,
           confidence: str = "fit") -> ReplayResult:
    """Offer each recorded answer in order; accept it iff its item still wants_more.

    Every refit_every accepted answers the model is refitted on all accepted answers.
    confidence="fit": an item's confidence is its max posterior in the last fit (None if it
    was not in it). confidence="online": see _OnlineScorer.
    """
    if refit_every < 1:
        raise ValueError("refit_every must be >= 1")
    if confidence not in ("fit", "online"):
        raise ValueError(f"unknown confidence mode {confidence!r}")
    counts: Counter[str] = Counter()
    accepted: list[int] = []
    acc_items: list[str] = []
    acc_workers: list[str] = []
    acc_labels: list[str] = []
    fitted: dict[str, float] = {}
    online: OnlineModel | None = None
    answers_of: dict[str, list[tuple[str, str]]] = {}
    since_refit = refits = 0
    for index, (item, worker, label) in enumerate(zip(items, workers, labels)):
        if confidence == "online":
            current = online.confidence(answers_of.get(item, ())) if online else None
        else:
            current = fitted.get(item)
        if not wants_more(policy, counts[item], current):
            continue
        counts[item] += 1
        accepted.append(index)
        acc_items.append(item)
        acc_workers.append(worker)
        acc_labels.append(label)
        answers_of.setdefault(item, []).append((worker, label))
        since_refit += 1
        if since_refit >= refit_every:
            since_refit = 0
            refits += 1
            model = make_model().fit(acc_items, acc_workers, acc_labels)
            if confidence == "online":
                online = OnlineModel.from_fit(model)
            else:
                top = model.probas_array_.max(axis=1).tolist()
                fitted = dict(zip(model.items_, top))
    return ReplayResult(accepted, dict(counts), refits)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    folders = find_datasets(Path(args.datasets), args.only)
    datasets = [read_dataset(folder) for folder in folders]
    make_refit = REFIT_MODELS[args.refit_model]
    baseline = {}
    for ds in datasets:
        baseline[ds.name] = accuracy(default_model().fit(ds.items, ds.workers, ds.labels).labels_,
                                     ds.gold)
    print("# Adaptive redundancy replay\n")
    print("Recorded answers replayed in CSV order; an answer is spent only if its item still "
          "wants_more. 'full' = default_model() on ALL recorded answers (fixed full overlap, "
          "often more than max per item: items are capped at max, and that cap is part of "
          "what is measured). 'adaptive' = default_model() once on the spent answers. "
          f"Confidence refits: {args.refit_model} model every R accepted answers "
          f"(R = {'max(200, 2% of answers)' if args.refit_every is None else args.refit_every}). "
          f"Target: spent <= {MAX_SHARE:.0%} and accuracy >= full - {MAX_LOSS_POINTS:g} point. "
          "Accuracy on gold tasks, %. Budget not modelled.\n")
    summary = []
    for mode in args.confidence:
        for policy in POLICIES:
            print(f"## min={policy.min} max={policy.max} target={policy.target_confidence} "
                  f"confidence={mode}\n")
            print("| data set | answers full | spent | spent % | R | refits | max/item | "
                  "acc full | acc adaptive | diff (pts) | target met |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            met = 0
            for ds in datasets:
                n = len(ds.items)
                every = args.refit_every or default_refit_every(n)
                result = replay(ds.items, ds.workers, ds.labels, policy, every, make_refit, mode)
                spent = [ds.items[i] for i in result.accepted]
                final = default_model().fit(spent, [ds.workers[i] for i in result.accepted],
                                            [ds.labels[i] for i in result.accepted])
                acc = accuracy(final.labels_, ds.gold)
                full = baseline[ds.name]
                share = len(spent) / n
                diff = 100 * (acc - full)
                ok = share <= MAX_SHARE and diff >= -MAX_LOSS_POINTS - 1e-9
                met += ok
                print(f"| {ds.name} | {n:,} | {len(spent):,} | {100 * share:.1f} | {every} | "
                      f"{result.refits} | {max(result.counts.values())} | {100 * full:.2f} | "
                      f"{100 * acc:.2f} | {diff:+.2f} | {'yes' if ok else 'no'} |")
            print(f"\nData sets meeting the target: {met} of {len(datasets)}\n")
            summary.append((mode, policy, met))
    print("## Summary\n")
    for mode, policy, met in summary:
        print(f"- min={policy.min} max={policy.max} target={policy.target_confidence} "
              f"confidence={mode}: {met} of {len(datasets)} data sets meet the target")
    print(f"\nWall time: {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=str(DEFAULT_DATASETS))
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--refit-every", type=int, default=None,
                        help="accepted answers between refits (default max(200, 2%% of answers))")
    parser.add_argument("--confidence", nargs="+", choices=["fit", "online"],
                        default=["fit", "online"])
    parser.add_argument("--refit-model", choices=sorted(REFIT_MODELS), default="default")
    args = parser.parse_args(argv)
    if args.refit_every is not None and args.refit_every < 1:
        parser.error("--refit-every must be >= 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
