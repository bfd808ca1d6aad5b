"""A round's quality report, built from its published result lines (pure, no I/O).

What a client reads before trusting or scaling a job: how far workers agree (Krippendorff's
alpha, and Fleiss' kappa where every item has the same number of answers), how the labels
are spread, how often and why items were marked not applicable, how long a task takes, which
items are least certain, and each worker's share of answers that match the results (and the
model's estimate of their accuracy, for label jobs).

The report is computed from ReportStats: sums over a run of result lines that add up across
runs (counts, agreement sums, label and result counts, N/A reasons, durations counted per
whole second, the sum of confidences as an exact fraction (so the mean does not depend on
how the lines were split), the ten least certain items, a tally per worker, and per
attribute value its items and agreement sums). Each shard of a round writes its
own; Publish merges them, so its memory grows with the crowd, the labels and the distinct
values of the tagged attributes, never with the items. The merge gives exactly the report of
the lines in one pass (build_report is the merge of one run), including the figures that
are not sums: the median duration comes from the counts of each duration, the least
certain items are the smallest ten of each shard's smallest ten, and an attribute's fifty
most frequent values come from every value's item count (Publish merges the detail of only
those fifty in a second pass over the shards' stats).
"""
from __future__ import annotations

import json
from bisect import insort
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from chalicelib.domain import quality
from chalicelib.domain.answers import smoothed_accuracy

LOWEST_CONFIDENCE_ITEMS = 10
MAX_ATTRIBUTE_VALUES = 50
# Task types whose answers are compared as exact values: labels, and numbers.
VALUE_TASKS = ("categorical", "numeric")


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


Judge = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
# A worker's tally: answers, answers matching the result, too fast, gold answers, gold right.
ANSWERS, MATCHES, TOO_FAST, GOLD_ANSWERS, GOLD_CORRECT = range(5)


def _pairs(counts: Mapping[Any, int]) -> list[list[Any]]:
    """Counts as [key, count] pairs, in their order: JSON keeps a number key a number."""
    return [[key, n] for key, n in counts.items()]


def _add(counts: Counter, pairs: Iterable[Sequence[Any]]) -> None:
    for key, n in pairs:
        counts[key] += n


def _confidence_order(entry: Sequence[Any]) -> tuple[Any, Any]:
    """Least certain first; ties by item id (the order of the report's list)."""
    return entry[0], entry[1]


class _ValueStats:
    """One attribute value's sums: agreement over its items and their results' counts (label
    and number jobs; a text job's per-value results are as many as its items, so its values
    show only their item counts, as text jobs show no result shares)."""

    def __init__(self) -> None:
        self.agreement = quality.AgreementSums()
        self.results: Counter = Counter()

    def to_json(self) -> dict[str, Any]:
        return {"agreement": self.agreement.to_json(), "results": _pairs(self.results)}

    def merge(self, stats: Mapping[str, Any]) -> None:
        self.agreement.merge(stats["agreement"])
        _add(self.results, stats["results"])


class ReportStats:
    """Mergeable sums of a run of result lines: all a round's report needs, none of the lines.

    add() counts a line; to_json() is what a shard writes; merge() adds a shard's JSON (in
    shard order, so ties in shares keep the order of one pass over the lines); report() is
    the round's report. merge(..., details=) merges attribute detail for some values only.
    """

    def __init__(self, task_type: str, attributes: Sequence[str] = ()) -> None:
        self.task_type = task_type
        self.by_value = task_type in VALUE_TASKS
        self.items = 0
        self.answered = 0
        self.answers = 0
        self.methods: Counter = Counter()
        self.agreement = quality.AgreementSums()
        self.results: Counter = Counter()
        self.na_reasons = 0
        self.reasons: Counter = Counter()
        self.seconds: Counter = Counter()
        self.confidence = Fraction(0)
        self.lowest: list[list[Any]] = []  # [confidence, item_id, external_id, answer, n_answers]
        self.workers: dict[str, list[int]] = {}
        self.gold_items = 0
        self.attribute_items: dict[str, Counter] = {name: Counter() for name in attributes}
        self.attribute_details: dict[str, dict[str, _ValueStats]] = {name: {} for name in attributes}

    def add(self, line: Mapping[str, Any], judge: Judge | None = None) -> None:
        """Count one result line (as published). judge(answer, gold): see build_report."""
        values = [_value(entry["answer"]) for entry in line["answers"]]
        self.items += 1
        self.answers += len(values)
        # A gold item nobody answered is no unit of agreement (it was never meant to take
        # the job's answers per item), so Fleiss' kappa still sees equal units.
        unit = bool(values) or not line.get("gold")
        if self.by_value and unit:
            self.agreement.add(values)
        reasons = line.get("na_reasons", [])
        self.na_reasons += len(reasons)
        self.reasons.update(quality.normalise_reason(reason) for reason in reasons)
        if line.get("method"):
            self.methods[line["method"]] += 1
        result = None if line["answer"] is None else _value(line["answer"])
        if line["n_answers"]:
            self.answered += 1
            if self.by_value:
                self.results["not_applicable" if line["not_applicable"] else result] += 1
            self.confidence += Fraction(line["confidence"])
            self._keep_lowest([[line["confidence"], line["item_id"], line.get("external_id"),
                                line["answer"], line["n_answers"]]])
        gold = _value(line["gold"]) if line.get("gold") else None
        self.gold_items += gold is not None
        for entry, value in zip(line["answers"], values):
            tally = self.workers.setdefault(entry["worker_id"], [0, 0, 0, 0, 0])
            tally[ANSWERS] += 1
            if gold is not None:
                tally[GOLD_ANSWERS] += 1
                tally[GOLD_CORRECT] += (judge(entry["answer"], line["gold"]) if judge
                                        else value == gold)
            tally[MATCHES] += value == result
            tally[TOO_FAST] += "too_fast" in entry.get("flags", ())
            took = _seconds(entry.get("leased_at"), entry.get("submitted_at"))
            if took is not None:
                self.seconds[took] += 1
        for name, items in self.attribute_items.items():
            value = _attribute_value((line.get("attributes") or {}).get(name))
            items[value] += 1
            if self.by_value:
                detail = self._detail(name, value)
                if unit:
                    detail.agreement.add(values)
                if line["n_answers"]:
                    detail.results["not_applicable" if line["not_applicable"]
                                   else str(_value(line["answer"]))] += 1

    def _detail(self, name: str, value: str) -> _ValueStats:
        details = self.attribute_details[name]
        if value not in details:
            details[value] = _ValueStats()
        return details[value]

    def _keep_lowest(self, entries: Iterable[list[Any]]) -> None:
        for entry in entries:
            insort(self.lowest, entry, key=_confidence_order)
        del self.lowest[LOWEST_CONFIDENCE_ITEMS:]

    def to_json(self) -> dict[str, Any]:
        """The sums as a JSON-ready dict (what a shard writes next to its part)."""
        return {
            "task_type": self.task_type, "items": self.items, "answered": self.answered,
            "answers": self.answers, "methods": _pairs(self.methods),
            "agreement": self.agreement.to_json(), "results": _pairs(self.results),
            "na_reasons": self.na_reasons, "reasons": _pairs(self.reasons),
            "seconds": _pairs(self.seconds),
            "confidence": [self.confidence.numerator, self.confidence.denominator],
            "lowest": self.lowest, "workers": self.workers, "gold_items": self.gold_items,
            "attributes": {name: [[value, n, self.attribute_details[name][value].to_json()
                                   if value in self.attribute_details[name] else None]
                                  for value, n in items.items()]
                           for name, items in self.attribute_items.items()},
        }

    def merge(self, stats: Mapping[str, Any],
              details: Mapping[str, Collection[str]] | None = None) -> None:
        """Add a run's sums (as to_json wrote them). With details, only the listed values of
        each attribute get their agreement and results merged (every value's items count)."""
        self.items += stats["items"]
        self.answered += stats["answered"]
        self.answers += stats["answers"]
        _add(self.methods, stats["methods"])
        self.agreement.merge(stats["agreement"])
        _add(self.results, stats["results"])
        self.na_reasons += stats["na_reasons"]
        _add(self.reasons, stats["reasons"])
        _add(self.seconds, stats["seconds"])
        self.confidence += Fraction(*stats["confidence"])
        self._keep_lowest(stats["lowest"])
        for worker, counts in stats["workers"].items():
            tally = self.workers.get(worker)
            if tally is None:
                self.workers[worker] = list(counts)
            else:
                for field, n in enumerate(counts):
                    tally[field] += n
        self.gold_items += stats["gold_items"]
        self.merge_details(stats, details, count_items=True)

    def merge_details(self, stats: Mapping[str, Any], details: Mapping[str, Collection[str]] | None,
                      count_items: bool = False) -> None:
        """Merge the attribute detail of the listed values (all with details None)."""
        for name, rows in stats["attributes"].items():
            if name not in self.attribute_items:
                continue
            wanted = None if details is None else details.get(name, ())
            for value, n, detail in rows:
                if count_items:
                    self.attribute_items[name][value] += n
                if detail is not None and (wanted is None or value in wanted):
                    self._detail(name, value).merge(detail)

    def kept_values(self) -> dict[str, set[str]]:
        """Each attribute's MAX_ATTRIBUTE_VALUES most frequent values (the report's)."""
        return {name: {value for value, _ in _ranked(items)[:MAX_ATTRIBUTE_VALUES]}
                for name, items in self.attribute_items.items()}

    def report(self, job_id: str, round_no: int, skills: Mapping[str, float] | None = None,
               settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The round's report from the merged sums (see build_report)."""
        settings = settings or {}
        categorical = self.by_value
        gold_answers = sum(tally[GOLD_ANSWERS] for tally in self.workers.values())
        gold_correct = sum(tally[GOLD_CORRECT] for tally in self.workers.values())
        workers = [{"worker_id": worker, "answers": tally[ANSWERS],
                    "agreement_with_results": round(tally[MATCHES] / tally[ANSWERS], 4),
                    "too_fast": tally[TOO_FAST],
                    **({"estimated_accuracy": round(skills[worker], 4)}
                       if skills and worker in skills else {}),
                    **({"gold_answers": tally[GOLD_ANSWERS], "gold_correct": tally[GOLD_CORRECT],
                        "gold_accuracy": _gold_accuracy(tally[GOLD_ANSWERS], tally[GOLD_CORRECT])}
                       if self.gold_items else {})}
                   for worker, tally in sorted(self.workers.items())]
        answered = self.answered
        result_distribution = ({str(label): n / answered for label, n in self.results.most_common()}
                               if categorical and answered else {})
        expected = settings.get("expected_distribution")
        report = {
            "job_id": job_id, "round": round_no, "task_type": self.task_type,
            "items": self.items, "answered_items": answered, "answers": self.answers,
            "too_fast_answers": sum(tally[TOO_FAST] for tally in self.workers.values()),
            "workers": len(self.workers), "methods": dict(self.methods),
            # Nominal agreement: labels, and numbers compared as exact values.
            "agreement": {
                "krippendorff_alpha": _rounded(self.agreement.alpha()) if categorical else None,
                "fleiss_kappa": _rounded(self.agreement.kappa()) if categorical else None,
            },
            "result_distribution": {label: round(share, 4)
                                    for label, share in result_distribution.items()},
            # Total variation distance of the results' shares (N/A included) from the client's.
            "expected_distribution": expected,
            "distance_from_expected": (round(quality.total_variation_distance(
                result_distribution, expected), 4) if expected and result_distribution else None),
            "answer_distribution": ({str(label): round(share, 4) for label, share
                                     in self.agreement.distribution().items()}
                                    if categorical else {}),
            "not_applicable": quality.grouped_na_summary(self.reasons, self.na_reasons,
                                                         self.answers),
            "median_seconds_per_task": quality.median_of_counts(self.seconds),
            "mean_confidence": (round(float(self.confidence / answered), 4)
                                if answered else None),
            "lowest_confidence": [
                {"item_id": item, "external_id": external_id, "answer": answer,
                 "confidence": confidence, "n_answers": n_answers}
                for confidence, item, external_id, answer, n_answers in self.lowest],
            "worker_summary": workers,
            "gold": {"items": self.gold_items, "answers": gold_answers,
                     "accuracy": round(gold_correct / gold_answers, 4) if gold_answers else None},
        }
        if settings.get("attributes"):
            report["by_attribute"] = self._by_attribute()
        return report

    def _by_attribute(self) -> dict[str, dict[str, Any]]:
        """Per tagged item attribute and value: items, agreement and result shares, so skew
        shows. At most MAX_ATTRIBUTE_VALUES values per attribute, the most frequent; the rest
        are counted under "(other values)"."""
        breakdown: dict[str, dict[str, Any]] = {}
        for name, items in self.attribute_items.items():
            ranked = _ranked(items)
            kept, rest = ranked[:MAX_ATTRIBUTE_VALUES], ranked[MAX_ATTRIBUTE_VALUES:]
            values = {}
            for value, n in kept:
                detail = self.attribute_details[name].get(value)
                answered = sum(detail.results.values()) if detail else 0
                values[value] = {
                    "items": n,
                    "krippendorff_alpha": (_rounded(detail.agreement.alpha())
                                           if self.by_value and detail else None),
                    "result_distribution": {label: round(count / answered, 4) for label, count
                                            in detail.results.most_common()}
                    if detail and answered else {},
                }
            breakdown[name] = {"values": values, "other_values_items": sum(n for _, n in rest)}
        return breakdown


def calibration_section(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The report's calibration section from the round's calibration object (what FitModel
    wrote: the map and the measures on the gold items before and after it): the map's kind,
    parameters and reason, the gold items it was fitted on, whether the round's model was
    fitted with its gold clamped (with the gold items each fit got right, scored as if their
    gold were unknown, and why), and before/after its ECE, Brier score, log loss and
    reliability diagram (10 bins: count, mean confidence, accuracy). None for a round
    without one (text or numeric answers, or nothing to fit); a round fitted before the
    choice has gold_clamped None."""
    if not stored:
        return None
    mapping = stored["map"]
    return {"kind": mapping["kind"], "reason": mapping.get("reason", ""),
            "params": dict(mapping.get("params") or {}), "gold_items": stored["gold_items"],
            "gold_clamped": stored.get("gold_clamped"),
            "clamped_right": stored.get("clamped_right"),
            "unclamped_right": stored.get("unclamped_right"),
            "clamp_reason": stored.get("reason", ""),
            "before": stored["before"], "after": stored["after"]}


def _ranked(items: Mapping[str, int]) -> list[tuple[str, int]]:
    """Attribute values by item count, most first; ties by value."""
    return sorted(items.items(), key=lambda entry: (-entry[1], entry[0]))


def shard_stats(task_type: str, lines: Iterable[Mapping[str, Any]],
                settings: Mapping[str, Any] | None = None, judge: Judge | None = None
                ) -> dict[str, Any]:
    """The report's sums of some result lines, as JSON (what a shard writes)."""
    stats = ReportStats(task_type, (settings or {}).get("attributes", []))
    for line in lines:
        stats.add(line, judge)
    return stats.to_json()


def merge_stats(task_type: str, shards: Iterable[Mapping[str, Any]],
                settings: Mapping[str, Any] | None = None,
                details: Mapping[str, Collection[str]] | None = None) -> ReportStats:
    """The shards' sums merged in the order given (see ReportStats.merge for details)."""
    merged = ReportStats(task_type, (settings or {}).get("attributes", []))
    for stats in shards:
        merged.merge(stats, details)
    return merged


def build_report(job_id: str, round_no: int, task_type: str, lines: Iterable[Mapping[str, Any]],
                 skills: Mapping[str, float] | None = None,
                 settings: Mapping[str, Any] | None = None,
                 judge: Judge | None = None
                 ) -> dict[str, Any]:
    """The report of one round from its result lines (as published), model skills and the
    job's report settings (expected distribution, attributes). judge(answer, gold) says
    whether an answer is right on a gold item (the job's gold rule; equality without one).
    The merge of one run's sums: the same code as Publish's merge of its shards'."""
    merged = merge_stats(task_type, [shard_stats(task_type, lines, settings, judge)], settings)
    return merged.report(job_id, round_no, skills, settings)
