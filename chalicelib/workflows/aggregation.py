"""Stage handlers of the aggregation state machine.

    LoadAnswers (loops while `more`) -> FitModel -> Aggregate (inline Map over the shard
    list, or Distributed Map over the S3 manifest for big rounds) -> Publish -> MarkDone

Every stage is idempotent: it writes objects and rows under keys derived from the job, the
round and the shard number, so a retried or repeated stage writes the same thing again.
Only small values travel in the execution's state (Step Functions caps it at 256 KiB):
shard numbers and keys; answers, posteriors and results live in S3 under
jobs/{job}/rounds/{round}/.

- LoadAnswers pages through the job's items (DynamoDB, item order) and writes each run of
  SHARD_ITEMS items twice: the answers with their lineage (answers/NNNNN.json) and, for
  categorical jobs, the votes as integer columns (votes/NNNNN.json, see
  chalicelib.domain.aggregation.columns). One call writes at most
  LOAD_SHARDS_PER_CALL shards and returns a cursor; the state machine calls again while
  `more` is true, so no call has to read a whole big job.
- FitModel reads only the vote columns, merges them into integer arrays (no string per
  answer), fits the engine's default categorical model on the whole round twice, with the
  gold items clamped to their label and without gold, keeps the clamped fit only when it
  predicts held-out gold measurably better, then fits the round's calibration map on the
  chosen fit's gold posteriors scored as if their gold were unknown
  (chalicelib.domain.aggregation.calibration.choose_fit; the identity, saying why, with too
  little gold). It writes each shard's posteriors with the map
  (posteriors/NNNNN.json) one shard at a time, each worker's estimated accuracy
  (workers.json), the map with its measures on the gold items before and after it
  (calibration.json) and the shard manifest. Text and numeric jobs need no fit.
- AggregateShard turns its items' posteriors into results (the model's label; calibrated
  confidence and probabilities, the model's own confidence as confidence_raw)
  or, for text and numbers, combines each item's answers; it writes the shard's result rows
  to DynamoDB, its JSON Lines and CSV parts to S3 and, next to them, the report's sums over
  its lines (stats/NNNNN.json, chalicelib.domain.report.ReportStats). Up to INLINE_MAX_SHARDS
  shards run in an inline Map over the list in the state; above that, a Distributed Map reads
  the manifest from S3.
- Publish streams the parts, in shard order, into the job's results object (multipart for
  big rounds), and the shards' CSV parts into its results CSV (chalicelib.workflows.downloads),
  and merges the shards' sums into the round's report, holding no result line: its memory
  grows with the crowd and the labels, not with the items. The report's calibration section
  is the round's calibration.json. MarkDone flips the job to done.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.domain import phases, webhooks
from chalicelib.domain.aggregation import NA_CLASS, Posterior, aggregate_item, vote
from chalicelib.domain.answers import NA_KEY, matches_gold
from chalicelib.domain.jobs import iso
from chalicelib.domain.keys import (
    answers_key, calibration_key, manifest_key, part_key, posteriors_key, report_key, results_key,
    stats_key, votes_key, workers_key,
)
from chalicelib.domain.model import (
    AGGREGATING, FAILED, ItemResult, Job,
)
from chalicelib.domain.report import (
    VALUE_TASKS, ReportStats, calibration_section, merge_stats, shard_stats,
)
from chalicelib.errors import NotFound
from chalicelib.handlers.platform import Platform
from chalicelib.handlers.quality import blocked_workers, is_left_out, left_out_workers
from chalicelib.handlers.rounds import end_round
from chalicelib.observability import count, seconds
from chalicelib.workflows.downloads import publish_csv, write_csv_part

SHARD_ITEMS = 500
LOAD_SHARDS_PER_CALL = 40
INLINE_MAX_SHARDS = 40
# S3 requests FitModel keeps in flight (botocore's connection pool holds 10) and the objects
# it holds at once: at 10M answers it reads 2,000 vote shards and writes 2,000 posteriors,
# minutes of S3 latency one request at a time.
FIT_IO_THREADS = 8
FIT_IO_WINDOW = 64


def _job(p: Platform, job_id: str) -> Job:
    job = p.jobs.get_job(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def load_answers(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Write the next LOAD_SHARDS_PER_CALL shards of the round's answers to S3.

    The event is the execution input, or this stage's previous output while `more` is
    true: `after` is the last item id written and `shard_count` the shards written so far.
    """
    job = _job(p, event["job_id"])
    round_no = int(event.get("round", job.round))
    after = event.get("after")
    shard = int(event.get("shard_count", 0))
    header = {"job_id": job.job_id, "round": round_no, "task_type": job.task_type,
              "answer_schema": job.answer_schema}
    categorical = job.kind == "categorical"
    attributes = job.report_settings.get("attributes", [])
    batch: list[dict[str, Any]] = []
    written = 0
    min_seconds = float(job.quality.get("min_seconds", 0))
    everywhere: dict[str, bool] = {}  # worker -> whether their answers are left out

    def flush() -> None:
        nonlocal shard, written
        p.blobs.put_text(answers_key(job.job_id, round_no, shard),
                         json.dumps({**header, "shard": shard, "items": batch}), "application/json")
        if categorical:
            p.blobs.put_text(votes_key(job.job_id, round_no, shard),
                             json.dumps(vote_columns(batch)), "application/json")
        shard += 1
        written += 1

    more = False
    for item in p.items.iter_items(job.job_id, after=after):
        if written == LOAD_SHARDS_PER_CALL:
            more = True
            break
        if item.held:
            continue  # a pilot round aggregates only the pilot's items
        unknown = set(item.answers) - set(everywhere)
        if unknown:  # one batch read per item that brings workers not seen before
            blocked = left_out_workers(p, job, unknown)
            everywhere.update({worker: worker in blocked for worker in unknown})
        left_out = {worker for worker in item.answers if everywhere[worker]}
        answers = sorted(((worker, a) for worker, a in item.answers.items()
                          if not is_left_out(a, worker, left_out)),
                         key=lambda entry: entry[1].submitted_at)
        entry: dict[str, Any] = {"item_id": item.item_id, "external_id": item.external_id, "answers": [
            {"worker_id": worker, "assignment_id": a.assignment_id, "answer": a.answer,
             "submitted_at": a.submitted_at, "leased_at": a.leased_at,
             "instruction_version": a.instruction_version,
             **({"flags": ["too_fast"]} if a.submitted_at - a.leased_at < min_seconds else {})}
            for worker, a in answers]}
        if attributes:
            data = item.data or {}
            entry["attributes"] = {name: data.get(name) for name in attributes}
        if item.gold:
            entry["gold"] = item.gold
        batch.append(entry)
        if len(batch) == SHARD_ITEMS:
            flush()
            after, batch = item.item_id, []
    if batch:
        after = batch[-1]["item_id"]
        flush()
    return {"job_id": job.job_id, "round": round_no, "kind": job.kind, "after": after,
            "shard_count": shard, "more": more}


def vote_columns(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A shard's votes object: its answers as integer columns (columns.shard_columns)."""
    # numpy: loaded only when a stage runs, so importing the app (the API) leaves it out.
    from chalicelib.domain.aggregation.columns import shard_columns

    items = [entry["item_id"] for entry in batch for _ in entry["answers"]]
    workers = [answer["worker_id"] for entry in batch for answer in entry["answers"]]
    labels = [vote(answer["answer"]) for entry in batch for answer in entry["answers"]]
    gold = {entry["item_id"]: entry["gold"]["label"] for entry in batch if "gold" in entry}
    return shard_columns(items, workers, labels, gold)


def _read_in_order(p: Platform, keys: list[str], use: Callable[[str], None]) -> None:
    """Pass each object's body to use, in key order; read FIT_IO_THREADS at a time, at most
    FIT_IO_WINDOW bodies held."""
    with ThreadPoolExecutor(FIT_IO_THREADS) as pool:
        for start in range(0, len(keys), FIT_IO_WINDOW):
            for body in pool.map(p.blobs.get_text, keys[start:start + FIT_IO_WINDOW]):
                use(body)


def _write_all(p: Platform, objects: Iterable[tuple[str, str]]) -> None:
    """Write (key, JSON body) pairs FIT_IO_THREADS at a time, at most FIT_IO_WINDOW built
    ahead of the writes; the first failed write fails the call (a retry writes them all again)."""
    with ThreadPoolExecutor(FIT_IO_THREADS) as pool:
        pending: list[Any] = []
        for key, body in objects:
            pending.append(pool.submit(p.blobs.put_text, key, body, "application/json"))
            if len(pending) == FIT_IO_WINDOW:
                for write in pending:
                    write.result()
                pending = []
        for write in pending:
            write.result()


def _shard_event(job_id: str, round_no: int, shard: int, fitted: bool) -> dict[str, Any]:
    return {"job_id": job_id, "round": round_no, "shard": shard,
            "key": answers_key(job_id, round_no, shard),
            "posteriors_key": posteriors_key(job_id, round_no, shard) if fitted else None}


def _measures(probas: Any, classes: Any, chosen: Any) -> dict[str, Any]:
    """Calibration measures of gold items' probability rows against their gold classes, the
    confidence being each row's probability of the chosen class (None without gold)."""
    # numpy: loaded only when a stage runs, so importing the app (the API) leaves it out.
    import numpy as np

    from chalicelib.domain.aggregation import calibration

    confidence = probas[np.arange(len(chosen)), chosen] if len(chosen) else np.zeros(0)
    correct = chosen == classes
    some = len(classes) > 0
    return {
        "ece": round(calibration.expected_calibration_error(confidence, correct), 4) if some else None,
        "brier": round(calibration.brier_score(probas, classes), 4) if some else None,
        "log_loss": round(calibration.log_loss(probas, classes), 4) if some else None,
        "reliability": [{**row, "confidence": None if row["confidence"] is None
                         else round(row["confidence"], 4),
                         "accuracy": None if row["accuracy"] is None else round(row["accuracy"], 4)}
                        for row in calibration.reliability(confidence, correct)],
    }


def round_calibration(make_model: Any, encoded: Any, gold_items: Any, gold_classes: Any
                      ) -> tuple[Any, Any, dict[str, Any]]:
    """(the round's fitted model, its CalibrationMap, its calibration.json): the model fitted
    with the gold items clamped or without gold, whichever predicts the gold better, with
    the gold items' honest posteriors (calibration.choose_fit: the clamped fit's from 5
    refits that never saw a fold's gold, the unclamped fit's as they are; above 1M answers
    the clamped fit, scored by one E-step without the clamp), the map fitted on them, and
    the measures before and after the map on those posteriors. The chosen class is the
    model's (the raw posterior's largest), as in the results. make_model returns a new,
    unfitted model."""
    # numpy: loaded only when a stage runs, so importing the app (the API) leaves it out.
    from chalicelib.domain.aggregation import calibration
    from chalicelib.domain.aggregation.categorical import argmax_first

    chosen_fit = calibration.choose_fit(make_model, encoded, gold_items, gold_classes)
    raw = chosen_fit.posteriors
    fitted = calibration.fit_calibration(raw, gold_classes)
    chosen = argmax_first(raw) if len(raw) else gold_classes[:0]
    return chosen_fit.model, fitted, {
        "map": fitted.to_dict(), "gold_items": int(len(gold_classes)),
        **chosen_fit.to_dict(),
        "before": _measures(raw, gold_classes, chosen),
        "after": _measures(fitted.apply(raw), gold_classes, chosen)}


def fit_model(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Fit the round's categorical model on every vote, and its calibration map on the gold
    items; write each shard's posteriors with the map.

    The model (class shares and a confusion matrix per worker) grows with workers x
    labels^2, so it is not shipped to the shards: they get their own items' posteriors and
    the map (a few numbers), which is all they need. Each worker's estimated accuracy goes
    to workers.json, the map and its measures on the gold items to calibration.json.
    Returns the shard list itself for an inline Map when there are at most
    INLINE_MAX_SHARDS shards, else only the manifest key for a Distributed Map.
    """
    # numpy: loaded only when this stage runs, so importing the app (the API) leaves it out.
    from chalicelib.domain.aggregation.categorical import default_model
    from chalicelib.domain.aggregation.columns import RoundVotes, read_shard

    job_id, round_no, shard_count = event["job_id"], int(event["round"]), int(event["shard_count"])
    fitted = event["kind"] == "categorical" and shard_count > 0
    if fitted:
        job = _job(p, job_id)
        labels = job.answer_schema["labels"]
        votes = RoundVotes(label_order=labels)
        _read_in_order(p, [votes_key(job_id, round_no, shard) for shard in range(shard_count)],
                       lambda body: votes.add(read_shard(json.loads(body))))
        encoded, gold_items, gold_classes = votes.encoded()
        # Gold items clamped to their known label teach the model about the workers who
        # answered them, unless the fit without gold predicts the gold better.
        engine, calibrated, measured = round_calibration(
            lambda: default_model(label_order=labels), encoded, gold_items, gold_classes)
        del encoded, gold_items, gold_classes
        method = getattr(engine, "chosen_", type(engine).__name__)
        probas = engine.probas_array_
        mapping = calibrated.to_dict()
        # One shard's rows at a time: a dict of every item would be the stage's biggest object.
        _write_all(p, ((posteriors_key(job_id, round_no, shard), json.dumps({
            "method": method, "classes": engine.classes_, "calibration": mapping,
            "posteriors": dict(zip(votes.items[start:stop],
                                   probas[start:stop].round(6).tolist()))}))
            for shard, (start, stop) in enumerate(votes.spans)))
        p.blobs.put_text(calibration_key(job_id, round_no), json.dumps(measured),
                         "application/json")
        p.blobs.put_text(workers_key(job_id, round_no), json.dumps({
            "method": method, "skills": {worker: round(skill, 6) for worker, skill
                                         in engine.skills_.items()}}), "application/json")
    shards = [_shard_event(job_id, round_no, shard, fitted) for shard in range(shard_count)]
    manifest = manifest_key(job_id, round_no)
    p.blobs.put_text(manifest, json.dumps(shards), "application/json")
    distributed = shard_count > INLINE_MAX_SHARDS
    return {"job_id": job_id, "round": round_no, "shard_count": shard_count,
            "manifest_key": manifest, "distributed": distributed,
            "shards": [] if distributed else shards}


def result_line(result: ItemResult) -> dict[str, Any]:
    """The JSON line a client downloads for one item."""
    line: dict[str, Any] = {
        "item_id": result.item_id, "external_id": result.external_id, "answer": result.answer,
        "confidence": result.confidence,
        "confidence_raw": (result.confidence if result.confidence_raw is None
                           else result.confidence_raw),
        "n_answers": result.n_answers,
        "not_applicable": result.not_applicable, "na_reasons": list(result.na_reasons),
        "method": result.method,
    }
    if result.probabilities is not None:
        line["probabilities"] = result.probabilities
    line["answers"] = [{**entry, "submitted_at": iso(entry["submitted_at"]),
                        "leased_at": iso(entry["leased_at"]) if entry.get("leased_at") else None}
                       for entry in result.lineage]
    return line


def gold_line(line: dict[str, Any], gold: dict[str, Any], classes: list[str] | None
              ) -> dict[str, Any]:
    """A gold item's line, answered or not: its known answer, sure of it (every confidence
    figure the line carries is 1, the calibrated and the raw one alike), with `gold`. A label
    item's probabilities are one-hot over the round's fitted classes when there are some, so
    an item nobody answered (it has no posterior) lists the same labels, N/A included, as
    every other item of its round."""
    line = {**line, "gold": gold}
    for name in ("confidence", "confidence_raw"):
        if name in line:
            line[name] = 1.0
    if line.get("probabilities") is not None and classes:
        line["probabilities"] = {(NA_KEY if label == NA_CLASS else label):
                                 1.0 if label == gold.get("label") else 0.0 for label in classes}
    return line


def _judge(job: Job) -> Any:
    """The job's gold rule, as the report's judge(answer, gold)."""
    return lambda answer, gold: matches_gold(job, answer, gold)


def calibrated_posteriors(fitted: dict[str, Any]) -> dict[str, list[float]]:
    """A shard's posteriors object's rows under its calibration map, all in one array
    operation (rounded as the raw rows are); empty when the map is the identity or absent
    (posteriors written before maps were: the raw rows stand)."""
    # numpy: loaded only when a stage runs, so importing the app (the API) leaves it out.
    import numpy as np

    from chalicelib.domain.aggregation.calibration import CalibrationMap

    mapping = CalibrationMap.from_dict(fitted.get("calibration"))
    if mapping.kind == "identity" or not fitted["posteriors"]:
        return {}
    items = list(fitted["posteriors"])
    rows = mapping.apply(np.asarray(list(fitted["posteriors"].values()))).round(6).tolist()
    return dict(zip(items, rows))


def aggregate_shard(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Aggregate one shard: results rows in DynamoDB, a JSON Lines part and the report's sums
    over its lines in S3 (a repeat writes the same three again)."""
    shard = json.loads(p.blobs.get_text(event["key"]))
    job = _job(p, shard["job_id"])
    fitted: dict[str, Any] = {"posteriors": {}}
    if event.get("posteriors_key"):
        fitted = json.loads(p.blobs.get_text(event["posteriors_key"]))
    calibrated = calibrated_posteriors(fitted)
    lines = []
    for entry in shard["items"]:
        row = fitted["posteriors"].get(entry["item_id"])
        posterior = None if row is None else Posterior(
            fitted["method"], fitted["classes"], calibrated.get(entry["item_id"], row),
            row if entry["item_id"] in calibrated else None)
        line = result_line(aggregate_item(entry["item_id"], shard["task_type"],
                                          shard["answer_schema"], entry["answers"],
                                          entry.get("external_id"), posterior,
                                          gold=entry.get("gold")))
        if "attributes" in entry:
            line["attributes"] = entry["attributes"]
        if "gold" in entry:
            line = gold_line(line, entry["gold"], fitted.get("classes"))
        lines.append(line)
    p.results.put_results(shard["job_id"], lines, job.id_space)
    key = part_key(shard["job_id"], shard["round"], shard["shard"])
    p.blobs.put_text(key, "".join(json.dumps(line) + "\n" for line in lines),
                     "application/x-ndjson")
    write_csv_part(p, shard["job_id"], shard["round"], shard["shard"], lines)
    stats = shard_stats(shard["task_type"], lines, job.report_settings, _judge(job))
    p.blobs.put_text(stats_key(shard["job_id"], shard["round"], shard["shard"]),
                     json.dumps(stats), "application/json")
    return {"shard": shard["shard"], "count": len(lines)}


def _shard_stats(p: Platform, job: Job, round_no: int, shard: int) -> dict[str, Any]:
    """A shard's report sums; made from its part when the shard was aggregated before shards
    wrote them (a round in flight across a deploy)."""
    try:
        return json.loads(p.blobs.get_text(stats_key(job.job_id, round_no, shard)))
    except NotFound:
        body = p.blobs.get_text(part_key(job.job_id, round_no, shard))
        return shard_stats(job.task_type, (json.loads(line) for line in body.splitlines()),
                           job.report_settings, _judge(job))


def round_stats(p: Platform, job: Job, round_no: int, shard_count: int) -> ReportStats:
    """The round's report sums: every shard's merged in shard order. With tagged attributes,
    a first pass merges every value's item count only and a second the detail of the values
    the report shows, so no attribute's values are all held in detail."""
    settings = job.report_settings
    shards = range(shard_count)
    detailed = bool(settings.get("attributes")) and job.task_type in VALUE_TASKS
    merged = merge_stats(job.task_type, (_shard_stats(p, job, round_no, shard) for shard in shards),
                         settings, details={} if detailed else None)
    if detailed:
        kept = merged.kept_values()
        for shard in shards:
            merged.merge_details(_shard_stats(p, job, round_no, shard), kept)
    return merged


def publish_results(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Stream the shard parts, in shard order, into the job's results object; write the report
    merged from the shards' sums."""
    job_id, round_no, shard_count = event["job_id"], int(event["round"]), int(event["shard_count"])

    def parts() -> Any:
        for shard in range(shard_count):
            yield p.blobs.get_text(part_key(job_id, round_no, shard))

    key = results_key(job_id)
    p.blobs.put_stream(key, parts(), "application/x-ndjson")
    publish_csv(p, job_id, round_no, shard_count)
    job = _job(p, job_id)
    skills = None
    try:
        skills = json.loads(p.blobs.get_text(workers_key(job_id, round_no)))["skills"]
    except NotFound:
        pass  # not a label job, or nothing to fit
    stored = None
    try:
        stored = json.loads(p.blobs.get_text(calibration_key(job_id, round_no)))
    except NotFound:
        pass  # not a label job, nothing to fit, or fitted before rounds were calibrated
    stats = round_stats(p, job, round_no, shard_count)
    report = stats.report(job_id, round_no, skills, job.report_settings)
    report["calibration"] = calibration_section(stored)
    report["phase"] = job.phase
    report["blocked_workers"] = blocked_workers(p, job_id)
    # Workers see their gold accuracy as of published rounds, never answer by answer.
    p.stats.publish_shown(job_id)
    body = json.dumps(report)
    p.blobs.put_text(report_key(job_id, round_no), body, "application/json")
    p.blobs.put_text(report_key(job_id), body, "application/json")
    return {"job_id": job_id, "round": round_no, "results_key": key, "count": stats.items}


def mark_done(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """End the round (chalicelib.handlers.rounds.end_round) and count how long it took; a
    repeat leaves the job as it was."""
    job = _job(p, event["job_id"])
    ended = end_round(p, job, int(event.get("round", job.round)), event["results_key"],
                      event["count"])
    if ended.changed:
        count("AggregationRuns")
        seconds("AggregationSeconds", ended.seconds)
    return {"job_id": job.job_id, "state": ended.state, "aggregation_seconds": ended.seconds}


def mark_failed(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Record that aggregation failed, with the error, so the client and operators see it.

    The state machine passes the caught error's name and cause as strings.
    """
    message = f"{event.get('error') or 'Error'}: {event.get('cause') or ''}"[:1000]
    job = _job(p, event["job_id"])
    p.jobs.transition(job.job_id, (AGGREGATING,), FAILED, error=message,
                      record=phases.record(p.now(), AGGREGATING, job.phase, FAILED, job.phase,
                                           "system", f"aggregation failed: {message[:200]}",
                                           job.round))
    webhooks.publish_job_events_safely(p, job.job_id)
    return {"job_id": event["job_id"], "state": FAILED}
