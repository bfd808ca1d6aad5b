"""A round's quality report, built from its published result lines (pure, no I/O).

What a client reads before trusting or scaling a job: how far workers agree (Krippendorff's
alpha, and Fleiss' kappa where every item has the same number of answers), how the labels
are spread, how often and why items were marked not applicable, how long a task takes, which
items are least certain, and each worker's share of answers that match the results (and the
model's estimate of their accuracy, for label jobs).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain import quality
from chalicelib.domain.answers import smoothed_accuracy

LOWEST_CONFIDENCE_ITEMS = 10
MAX_ATTRIBUTE_VALUES = 50


def _seconds(leased_at: str | None, submitted_at: str | None) -> float | None:
    if not leased_at or not submitted_at:
        return None
    took = (datetime.fromisoformat(submitted_at.replace("Z", "+00:00"))
            - datetime.fromisoformat(leased_at.replace("Z", "+00:00"))).total_seconds()
    return took if took >= 0 else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _gold_accuracy(answers: int, correct: int) -> float | None:
    """A worker's gold accuracy under a Beta(1, 1) prior (one right and one wrong answer
    before any gold is seen); None without gold answers, where the prior's 0.5 would read
    as "1 of 2 right"."""
    return round(smoothed_accuracy(correct, answers), 4) if answers else None


def _value(answer: Mapping[str, Any]) -> Any:
    """An answer's value as a hashable (None for not applicable)."""
    if "not_applicable" in answer:
        return None
    for key in ("label", "value", "text"):
        if key in answer:
            return answer[key]
    return None


def _attribute_value(value: Any) -> str:
    """An item attribute's value as the key it is grouped under."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def by_attribute(lines: list[Mapping[str, Any]], names: Iterable[str], categorical: bool
                 ) -> dict[str, dict[str, Any]]:
    """Per tagged item attribute and value: items, agreement and result shares, so skew shows.

    At most MAX_ATTRIBUTE_VALUES values per attribute, the most frequent; the rest are counted
    under "(other values)".
    """
    breakdown: dict[str, dict[str, Any]] = {}
    for name in names:
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for line in lines:
            value = _attribute_value((line.get("attributes") or {}).get(name))
            groups.setdefault(value, []).append(line)
        ranked = sorted(groups.items(), key=lambda entry: (-len(entry[1]), entry[0]))
        kept, rest = ranked[:MAX_ATTRIBUTE_VALUES], ranked[MAX_ATTRIBUTE_VALUES:]
        values = {}
        for value, members in kept:
            units = {line["item_id"]: [_value(a["answer"]) for a in line["answers"]]
                     for line in members}
            results = Counter(("not_applicable" if line["not_applicable"]
                               else str(_value(line["answer"])))
                              for line in members if line["n_answers"])
            answered = sum(results.values())
            values[value] = {
                "items": len(members),
                "krippendorff_alpha": (_rounded(quality.krippendorff_alpha_nominal(units))
                                       if categorical else None),
                "result_distribution": {label: round(n / answered, 4)
                                        for label, n in results.most_common()} if answered else {},
            }
        breakdown[name] = {"values": values,
                           "other_values_items": sum(len(members) for _, members in rest)}
    return breakdown


def build_report(job_id: str, round_no: int, task_type: str, lines: Iterable[Mapping[str, Any]],
                 skills: Mapping[str, float] | None = None,
                 settings: Mapping[str, Any] | None = None,
                 judge: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None
                 ) -> dict[str, Any]:
    """The report of one round from its result lines (as published), model skills and the
    job's report settings (expected distribution, attributes). judge(answer, gold) says
    whether an answer is right on a gold item (the job's gold rule; equality without one)."""
    settings = settings or {}
    lines = list(lines)
    units: dict[str, list[Any]] = {}
    results: Counter = Counter()
    reasons: list[str] = []
    durations: list[float] = []
    methods: Counter = Counter()
    worker_answers: Counter = Counter()
    worker_matches: Counter = Counter()
    confidences: list[tuple[float, str, Mapping[str, Any]]] = []
    gold_answers: Counter = Counter()
    gold_correct: Counter = Counter()
    too_fast: Counter = Counter()
    gold_items = 0
    n_answers = 0
    for line in lines:
        item = line["item_id"]
        values = [_value(entry["answer"]) for entry in line["answers"]]
        units[item] = values
        n_answers += len(values)
        reasons += line.get("na_reasons", [])
        if line.get("method"):
            methods[line["method"]] += 1
        result = None if line["answer"] is None else _value(line["answer"])
        if line["n_answers"]:
            results["not_applicable" if line["not_applicable"] else result] += 1
            confidences.append((line["confidence"], item, line))
        gold = _value(line["gold"]) if line.get("gold") else None
        gold_items += gold is not None
        for entry, value in zip(line["answers"], values):
            worker_answers[entry["worker_id"]] += 1
            if gold is not None:
                gold_answers[entry["worker_id"]] += 1
                gold_correct[entry["worker_id"]] += (judge(entry["answer"], line["gold"])
                                                     if judge else value == gold)
            worker_matches[entry["worker_id"]] += value == result
            too_fast[entry["worker_id"]] += "too_fast" in entry.get("flags", ())
            took = _seconds(entry.get("leased_at"), entry.get("submitted_at"))
            if took is not None:
                durations.append(took)
    categorical = task_type in ("categorical", "numeric")
    confidences.sort(key=lambda entry: (entry[0], entry[1]))
    answered = sum(results.values())
    workers = [{"worker_id": worker, "answers": count,
                "agreement_with_results": round(worker_matches[worker] / count, 4),
                "too_fast": too_fast[worker],
                **({"estimated_accuracy": round(skills[worker], 4)}
                   if skills and worker in skills else {}),
                **({"gold_answers": gold_answers[worker], "gold_correct": gold_correct[worker],
                    "gold_accuracy": _gold_accuracy(gold_answers[worker], gold_correct[worker])}
                   if gold_items else {})}
               for worker, count in sorted(worker_answers.items())]
    all_gold = sum(gold_answers.values())
    result_distribution = ({str(label): n / answered for label, n in results.most_common()}
                           if categorical and answered else {})
    expected = settings.get("expected_distribution")
    report = {
        "job_id": job_id, "round": round_no, "task_type": task_type,
        "items": len(units), "answered_items": answered, "answers": n_answers,
        "too_fast_answers": sum(too_fast.values()),
        "workers": len(worker_answers), "methods": dict(methods),
        # Nominal agreement: labels, and numbers compared as exact values.
        "agreement": {
            "krippendorff_alpha": _rounded(quality.krippendorff_alpha_nominal(units))
            if categorical else None,
            "fleiss_kappa": _rounded(quality.fleiss_kappa(units)) if categorical else None,
        },
        "result_distribution": {label: round(share, 4)
                                for label, share in result_distribution.items()},
        # Total variation distance of the results' shares (N/A included) from the client's.
        "expected_distribution": expected,
        "distance_from_expected": (round(quality.total_variation_distance(
            result_distribution, expected), 4) if expected and result_distribution else None),
        "answer_distribution": ({str(label): round(share, 4) for label, share
                                 in quality.label_distribution(units).items()}
                                if categorical else {}),
        "not_applicable": quality.na_summary(reasons, n_answers),
        "median_seconds_per_task": quality.median(durations),
        "mean_confidence": (round(sum(c for c, _, _ in confidences) / len(confidences), 4)
                            if confidences else None),
        "lowest_confidence": [
            {"item_id": item, "external_id": line.get("external_id"), "answer": line["answer"],
             "confidence": confidence, "n_answers": line["n_answers"]}
            for confidence, item, line in confidences[:LOWEST_CONFIDENCE_ITEMS]],
        "worker_summary": workers,
        "gold": {"items": gold_items, "answers": all_gold,
                 "accuracy": round(sum(gold_correct.values()) / all_gold, 4) if all_gold else None},
    }
    if settings.get("attributes"):
        report["by_attribute"] = by_attribute(lines, settings["attributes"], categorical)
    return report
