"""`crowd`: the marketplace from a terminal, for clients.

Configuration, first found wins: flags (--api-url, --api-key; before or after the command),
the environment (CROWD_API_URL, CROWD_API_KEY), a JSON config file ({"api_url": ...,
"api_key": ...}, or `make run`'s .local-stack.json with base_url and client_key; --config, or
$CROWD_CONFIG, or ~/.config/crowd/config.json).

Exit codes: 0 done; 1 the API refused (its message is printed), what was asked for is not
ready (results before any are published) or the job failed (an uploaded file with bad lines);
2 bad usage or input; 3 the API could not be reached.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from crowd_client.client import MULTIPART_ABOVE_BYTES, ApiError, Client, file_key

EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
DEFAULT_CONFIG = Path.home() / ".config" / "crowd" / "config.json"
# `jobs create` uploads a file larger than this, or of more items than a job posts inline.
UPLOAD_ABOVE_BYTES = 1024 * 1024
INLINE_ITEMS = 2000


class UsageError(Exception):
    """Bad input on the command line or in a file: exit code 2."""


class JobFailed(Exception):
    """The job failed (e.g. its uploaded file had bad lines): exit code 1."""

    code = "job_failed"


class NotReady(Exception):
    """What was asked for does not exist yet (e.g. results before a round is published):
    exit code 1, like a refusal from the API."""

    code = "results_not_ready"


# --- configuration -------------------------------------------------------------------------

def config_path(args: argparse.Namespace, environ: dict[str, str]) -> Path:
    """The config file: --config, $CROWD_CONFIG or ~/.config/crowd/config.json; big uploads
    in progress are remembered in its folder's uploads/."""
    return Path(args.config or environ.get("CROWD_CONFIG") or DEFAULT_CONFIG)


def settings(args: argparse.Namespace, environ: dict[str, str]) -> tuple[str, str]:
    """The API URL and key from flags, the environment or the config file, in that order."""
    path = config_path(args, environ)
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except ValueError as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from None
    elif args.config:
        raise UsageError(f"no config file at {path}")
    # `make run`'s .local-stack.json names them base_url and client_key.
    url = args.api_url or environ.get("CROWD_API_URL") or stored.get("api_url") \
        or stored.get("base_url")
    key = args.api_key or environ.get("CROWD_API_KEY") or stored.get("api_key") \
        or stored.get("client_key")
    if not url or not key:
        raise UsageError("set the API URL and key: --api-url/--api-key, CROWD_API_URL/"
                         f"CROWD_API_KEY, or {path} with api_url and api_key")
    return url, key


# --- input files ---------------------------------------------------------------------------

def read_items(path: str) -> list[dict[str, Any]]:
    """Items from a .jsonl file (one item object per line: {"data": ..., "external_id": ...,
    "gold": ...}; a line without "data" is taken as the data itself) or a .csv file (every
    column goes into data but external_id, and gold_label, which becomes the gold label)."""
    file = Path(path)
    if not file.exists():
        raise UsageError(f"no such file: {path}")
    if file.suffix.lower() == ".csv":
        with file.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        items = []
        for row in rows:
            item: dict[str, Any] = {"data": {k: v for k, v in row.items()
                                             if k not in ("external_id", "gold_label")}}
            if row.get("external_id"):
                item["external_id"] = row["external_id"]
            if row.get("gold_label"):
                item["gold"] = {"label": row["gold_label"]}
            items.append(item)
        return items
    if file.suffix.lower() not in (".jsonl", ".ndjson"):
        raise UsageError(f"items must be a .jsonl or .csv file, not {file.suffix or 'no suffix'}")
    items = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise UsageError(f"{path}:{number}: not JSON ({error})") from None
        if not isinstance(entry, dict):
            raise UsageError(f"{path}:{number}: each line must be a JSON object")
        items.append(entry if "data" in entry else {"data": entry})
    return items


def json_argument(text: str, name: str) -> Any:
    """A JSON value given inline or as @file."""
    if text.startswith("@"):
        file = Path(text[1:])
        if not file.exists():
            raise UsageError(f"no such file: {file}")
        text = file.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"{name} is not valid JSON: {error}") from None


def spec_argument(parts: Sequence[str]) -> dict[str, Any]:
    """A quote spec: one JSON object (inline or @file), or key=value pairs (values parsed as
    JSON when they are, e.g. items=200 redundancy=3 task_type=categorical)."""
    if len(parts) == 1 and (parts[0].startswith("{") or parts[0].startswith("@")):
        spec = json_argument(parts[0], "SPEC")
        if not isinstance(spec, dict):
            raise UsageError("SPEC must be a JSON object")
        return spec
    spec = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {part!r}")
        try:
            spec[key] = json.loads(value)
        except ValueError:
            spec[key] = value
    return spec


# --- output --------------------------------------------------------------------------------

def print_json(value: Any, out: TextIO) -> None:
    """Pretty JSON."""
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def progress(done: int, total: int, label: str, out: TextIO) -> None:
    """A one-line progress bar, redrawn in place."""
    width = 30
    filled = width if total <= 0 else min(width, round(width * done / total))
    share = 1.0 if total <= 0 else done / total
    out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
              f"({share:.0%})")
    out.flush()


def leased_text(counts: dict[str, Any]) -> str:
    """The live leases of a job's counts: "~N" when the API estimated them from samples of a
    large job's task pool."""
    return f"{'~' if counts.get('leased_estimated') else ''}{counts.get('leased', 0)}"


def job_line(job: dict[str, Any]) -> str:
    """A job's state and counts on one line."""
    counts = job.get("counts", {})
    return (f"{job['job_id']} {job['state']} ({job.get('phase', '')}, round {job.get('round', 1)}): "
            f"{counts.get('done', 0)}/{counts.get('items', job.get('result_count') or 0)} items done, "
            f"{counts.get('answered', 0)} answers, {leased_text(counts)} leased, "
            f"spent ${job.get('spent_cents', 0) / 100:.2f} of ${job.get('budget_cents', 0) / 100:.2f}")


def report_table(report: dict[str, Any], out: TextIO) -> None:
    """The calibration report as plain tables."""
    agreement = report.get("agreement") or {}
    gold = report.get("gold") or {}
    na = report.get("not_applicable") or {}
    rows = [
        ("job", report.get("job_id")), ("round", f"{report.get('round')} ({report.get('phase', '')})"),
        ("items / answered", f"{report.get('items')} / {report.get('answered_items')}"),
        ("answers / workers", f"{report.get('answers')} / {report.get('workers')}"),
        ("gold accuracy", _number(gold.get("accuracy")) + f" ({gold.get('answers', 0)} gold answers)"),
        ("Krippendorff's alpha", _number(agreement.get("krippendorff_alpha"))),
        ("Fleiss' kappa", _number(agreement.get("fleiss_kappa"))),
        ("N/A rate", _number(na.get("rate"))),
        ("median s per task", _number(report.get("median_seconds_per_task"))),
        ("mean confidence", _number(report.get("mean_confidence"))),
        ("calibration", _calibration(report.get("calibration"))),
        ("distance from expected", _number(report.get("distance_from_expected"))),
        ("too-fast answers", str(report.get("too_fast_answers", 0))),
    ]
    _table(["metric", "value"], rows, out)
    if report.get("result_distribution"):
        out.write("\nlabels\n")
        expected = report.get("expected_distribution") or {}
        _table(["label", "results", "expected"],
               [(label, _number(share), _number(expected.get(label)))
                for label, share in report["result_distribution"].items()], out)
    if na.get("reasons"):
        out.write("\nN/A reasons\n")
        _table(["reason", "count"], [(r["reason"], str(r["count"])) for r in na["reasons"]], out)
    if report.get("worker_summary"):
        out.write("\nworkers\n")
        _table(["worker", "answers", "agreement", "estimated", "gold", "too fast"],
               [(w["worker_id"], str(w["answers"]), _number(w.get("agreement_with_results")),
                 _number(w.get("estimated_accuracy")), _gold(w), str(w.get("too_fast", 0)))
                for w in report["worker_summary"]], out)
    if report.get("lowest_confidence"):
        out.write("\nleast certain items\n")
        _table(["item", "answer", "confidence"],
               [(e.get("external_id") or e["item_id"], _answer_text(e.get("answer")),
                 _number(e.get("confidence"))) for e in report["lowest_confidence"]], out)


def _calibration(section: dict[str, Any] | None) -> str:
    """The round's calibration map and its ECE on the gold items before and after it."""
    if not section:
        return "-"
    before, after = section.get("before") or {}, section.get("after") or {}
    text = (f"{section['kind']} on {section.get('gold_items', 0)} gold items, ECE "
            f"{_number(before.get('ece'))} -> {_number(after.get('ece'))}")
    if section.get("gold_clamped") is not None:
        text += "; model fitted with gold " + ("clamped" if section["gold_clamped"]
                                               else "not clamped")
    return text


def _gold(worker: dict[str, Any]) -> str:
    """A worker's gold accuracy, or "none yet" when they have met no gold item."""
    if "gold_answers" in worker and not worker["gold_answers"]:
        return "none yet"
    return _number(worker.get("gold_accuracy"))


def _answer_text(answer: Any) -> str:
    """An answer as readable text: its label, value or text, "N/A" for not applicable."""
    if answer is None or (isinstance(answer, dict) and "not_applicable" in answer):
        return "N/A"
    return str(_flat_answer(answer))


def _number(value: Any) -> str:
    return "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def output_format(path: str) -> str:
    """The download format a file's suffix asks for: jsonl (.jsonl, .ndjson) or csv."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise UsageError(f"results go to a .jsonl or .csv file, not {suffix or 'no suffix'}")


def download_results(client: Client, job_id: str, path: str, err: TextIO) -> int:
    """Stream the job's results download (JSON Lines or CSV, by the file's suffix) into path,
    with a progress line on err; return the number of results."""
    fmt = output_format(path)
    shown = Throttled(lambda done, total, rows: download_progress(done, total, rows, err))
    link = client.download_results(job_id, path, fmt, progress=shown)
    shown.last()
    err.write("\n")
    return int(link.get("result_count") or link["rows"])


def write_answers(client: Client, job_id: str, path: str, err: TextIO) -> int:
    """Raw answers in crowd-kit's long form to .jsonl or .csv, written as the pages come in
    (none held in memory), with a count on err; return how many."""
    fmt = output_format(path)
    count = 0
    shown = Throttled(lambda done, _total, _rows: err.write(f"\ranswers written: {done}"))
    with Path(path).open("w", newline="" if fmt == "csv" else None, encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["task", "worker", "label"])
        if fmt == "csv":
            writer.writeheader()
        for row in client.iter_answers(job_id):
            if fmt == "csv":
                writer.writerow(row)
            else:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            shown(count, None, count)
    shown.last()
    err.write("\n")
    return count


class Throttled:
    """A progress callback redrawn at most every `every` seconds (and once more at the end,
    with last()), so a fast download is not slowed by its own display."""

    def __init__(self, draw: Any, every: float = 0.2) -> None:
        self._draw, self._every = draw, every
        self._at = 0.0
        self._args: tuple[Any, ...] | None = None

    def __call__(self, *args: Any) -> None:
        self._args = args
        now = time.monotonic()
        if now - self._at >= self._every:
            self._at = now
            self._draw(*args)

    def last(self) -> None:
        """Draw the latest state (if there was any)."""
        if self._args is not None:
            self._draw(*self._args)


def download_progress(done: int, total: int | None, rows: int, out: TextIO) -> None:
    """A download's progress line, redrawn in place: a bar of bytes when the size is known,
    the bytes and the rows so far."""
    if total:
        width = 30
        filled = min(width, round(width * done / total))
        out.write(f"\rdownloading [{'#' * filled}{'.' * (width - filled)}] "
                  f"{_size(done)}/{_size(total)} ({done / total:.0%}), {rows} rows")
    else:
        out.write(f"\rdownloading {_size(done)}, {rows} rows")
    out.flush()


def _size(count: int) -> str:
    """Bytes for people: B, KB, MB, GB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _flat_answer(answer: Any) -> Any:
    if not isinstance(answer, dict):
        return answer
    for key in ("label", "value", "text"):
        if key in answer:
            return answer[key]
    return json.dumps(answer, ensure_ascii=False)


# --- commands ------------------------------------------------------------------------------

def cmd_quote(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    quote = client.quote(**spec_argument(args.spec))
    print_json(quote, out)


def cmd_create(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    file = Path(args.items)
    if not file.exists():
        raise UsageError(f"no such file: {args.items}")
    items: list[dict[str, Any]] = []
    upload = args.upload == "always" or (args.upload == "auto"
                                         and file.stat().st_size > UPLOAD_ABOVE_BYTES)
    if not upload:
        items = read_items(args.items)
        upload = args.upload == "auto" and len(items) > INLINE_ITEMS
    prepared = prepare_upload(file) if upload else None
    count = prepared[2] if prepared else len(items)
    if not count:
        raise UsageError(f"{args.items} has no items")
    try:
        job = _create(client, args, items, prepared, count)
    finally:
        if prepared is not None and prepared[0] != file:
            prepared[0].unlink(missing_ok=True)
    # The API writes the items in chunks (an upload: byte ranges of the file) behind a
    # queue: show them landing.
    label = "reading the file" if prepared else "writing items"
    while job["state"] == "ingesting":
        ingest = job.get("ingest") or {}
        progress(ingest.get("written", 0), ingest.get("chunks", 0), label, sys.stderr)
        time.sleep(args.every)
        job = client.job(job["job_id"])
    ingest = job.get("ingest") or {}
    progress(ingest.get("written", 0), ingest.get("chunks", 0), label, sys.stderr)
    sys.stderr.write("\n")
    if prepared is not None:
        _ingest_summary(client, job, args.items)
    print_json(job, out)
    if job["state"] == "failed":
        raise JobFailed(job.get("error") or "the job failed")


def _create(client: Client, args: argparse.Namespace, items: list[dict[str, Any]],
            prepared: tuple[Path, str, int] | None, count: int) -> dict[str, Any]:
    """Quote (unless --quote), upload the file if it goes as one, and post the job."""
    quote_id = args.quote
    if not quote_id:
        spec = {"task_type": args.task_type, "items": count}
        for name in ("redundancy", "reward_cents", "cohort", "gold_rate"):
            value = getattr(args, name)
            if value is not None:
                spec[name] = value
        quote = client.quote(**spec)
        quote_id = quote["quote_id"]
        sys.stderr.write(f"quote {quote_id}: ${quote['total_cents'] / 100:.2f}, firm until "
                         f"{quote['expires_at']}\n")
    body: dict[str, Any] = {"instructions": json_text(args.instructions)}
    if args.labels:
        body["answer_schema"] = {"labels": [label.strip() for label in args.labels.split(",")]}
    if args.schema:
        body["answer_schema"] = json_argument(args.schema, "--schema")
    for flag, key in (("title", "title"), ("not_applicable", "not_applicable"),
                      ("deadline", "deadline")):
        if getattr(args, flag):
            body[key] = getattr(args, flag)
    if args.pilot is not None:
        body["pilot"] = {"items": args.pilot}
    if args.suite_size is not None:
        body["suite_size"] = args.suite_size
    for flag in ("promotion", "quality", "report"):
        if getattr(args, flag):
            body[flag] = json_argument(getattr(args, flag), f"--{flag}")
    for extra in args.set or ():
        key, _, value = extra.partition("=")
        body[key] = json_argument(value, f"--set {key}")
    if prepared is None:
        sys.stderr.write(f"uploading {len(items)} items...\n")
        return client.create_job(quote_id, items, **body)
    path, fmt, _ = prepared
    source = Path(args.items)
    state, key = upload_state(args.upload_state_dir, source), file_key(source)
    if (not args.restart and path.stat().st_size > MULTIPART_ABOVE_BYTES
            and _remembered(state) == key):
        sys.stderr.write(f"resuming the upload of {source} (--restart to start over)\n")
    upload_id = client.upload(path, fmt, lambda sent, total: progress(
        sent, total, "uploading", sys.stderr), state=state, key=key,
        restart=args.restart, multipart_above=MULTIPART_ABOVE_BYTES)
    sys.stderr.write("\n")
    return client.create_job_from_upload(quote_id, upload_id,
                                         skip_bad_lines=args.skip_bad_lines, **body)


def upload_state(folder: Path, source: Path) -> Path:
    """The file remembering a big upload of `source` in progress, named by its absolute path
    (its size and modification time are checked when it is read)."""
    name = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:32]
    return folder / f"{name}.json"


def _remembered(state: Path) -> Any:
    """The file an upload in progress was remembered for (its key), if any."""
    try:
        return json.loads(state.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _ingest_summary(client: Client, job: dict[str, Any], path: str) -> None:
    """An uploaded file's lines, items and bad lines (by line number in the file)."""
    report = client.ingest_report(job["job_id"])
    if "lines" not in report:
        return
    sys.stderr.write(f"{report['lines']} lines, {report['items']} items, "
                     f"{report['bad_lines']} bad lines\n")
    for line in report.get("listed", []):
        where = f" ({line['field']})" if line.get("field") else ""
        sys.stderr.write(f"{path}:{line['line']}: {line['message']}{where}\n")
    if report.get("truncated"):
        sys.stderr.write(f"... and {report['bad_lines'] - len(report['listed'])} more\n")


def prepare_upload(file: Path) -> tuple[Path, str, int]:
    """The file to upload, its format and how many items it holds. A .csv file goes as it
    is (its header names the items' fields; one row a line). A .jsonl file's lines without
    "data" are wrapped as the data itself, into a temporary copy: each line stays on its
    line, so the API's line numbers are the file's."""
    suffix = file.suffix.lower()
    if suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
            if "gold_label" in header:
                raise UsageError("gold items are posted inline: use --upload never "
                                 f"(up to {INLINE_ITEMS} items)")
            rows = sum(1 for line in handle if line.strip())
        return file, "csv", rows
    if suffix not in (".jsonl", ".ndjson"):
        raise UsageError(f"items must be a .jsonl or .csv file, not {suffix or 'no suffix'}")
    descriptor, name = tempfile.mkstemp(suffix=".jsonl", prefix="crowd-upload-")
    count = 0
    with file.open(encoding="utf-8") as source, \
            os.fdopen(descriptor, "w", encoding="utf-8") as copy:
        for line in source:
            text = line.rstrip("\r\n")
            if text.strip():
                count += 1
                text = _wrapped(text)
            copy.write(text + "\n")
    return Path(name), "jsonl", count


def _wrapped(line: str) -> str:
    """A JSON Lines line as the API takes it: an object without "data" is the data."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line  # the API reports it, by its line number
    if isinstance(entry, dict) and "data" not in entry:
        return json.dumps({"data": entry}, ensure_ascii=False)
    return line


def json_text(text: str) -> str:
    """Instructions inline, or from @file."""
    if text.startswith("@"):
        file = Path(text[1:])
        if not file.exists():
            raise UsageError(f"no such file: {file}")
        return file.read_text(encoding="utf-8")
    return text


def cmd_watch(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    until = tuple(args.until.split(","))
    for job in client.watch(args.job_id, until=until, every=args.every, timeout=args.timeout):
        counts = job.get("counts", {})
        progress(counts.get("done", 0), counts.get("items", 0), f"{job['state']:<11}", out)
        out.write(f"  {counts.get('answered', 0)} answers, {leased_text(counts)} leased ")
        out.flush()
    out.write("\n" + job_line(job) + "\n")


def cmd_report(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.html:
        Path(args.html).write_text(client.report_html(args.job_id, args.round), encoding="utf-8")
        out.write(f"wrote {args.html}\n")
        return
    report = client.report(args.job_id, args.round)
    if args.json:
        print_json(report, out)
    else:
        report_table(report, out)


def cmd_results(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    output_format(args.output)  # a file the command cannot write is refused before any call
    job = ready_job(client, args)
    if job["state"] != "done":
        sys.stderr.write(f"note: {job_line(job)}; these are the results published so far\n")
    if args.answers:
        count = write_answers(client, args.job_id, args.output, sys.stderr)
    else:
        count = download_results(client, args.job_id, args.output, sys.stderr)
    out.write(f"wrote {count} {'answers' if args.answers else 'results'} to {args.output}\n")


def ready_job(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """The job once it has published results: at once, or (--wait) after polling until it is
    done, failed or paused. The API pages results before any are published (0 rows), so the
    job's state is what tells "no results yet" from "no results"."""
    if args.wait:
        job = client.wait(args.job_id, until=("done", "failed", "paused"), every=args.every,
                          timeout=args.timeout)
    else:
        job = client.job(args.job_id)
    if job.get("result_count") is None:
        hint = "" if args.wait or job["state"] == "failed" else \
            "; run again when it is done, or add --wait"
        raise NotReady(f"results are not ready: {job['job_id']} is {job['state']} "
                       f"({job.get('phase', '')}, round {job.get('round', 1)}) and has published "
                       f"no results{hint}")
    return job


def cmd_promote(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    instructions = json_text(args.instructions) if args.instructions else None
    out.write(job_line(client.promote(args.job_id, instructions, args.reason)) + "\n")


def cmd_stop(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    out.write(job_line(client.stop(args.job_id)) + "\n")


def cmd_show(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    print_json(client.job(args.job_id), out)


def cmd_list(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    for job in client.jobs():
        out.write(f"{job['job_id']}  {job['state']:<11} {job.get('phase', ''):<11} "
                  f"{job['task_type']:<13} {job['title']}\n")


def cmd_key_create(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    key = client.create_requester_key()
    out.write(f"aws_access_key_id = {key['access_key_id']}\n"
              f"aws_secret_access_key = {key['secret_access_key']}\n"
              "# the secret is shown this once; with AWS_ENDPOINT_URL_MTURK="
              f"{client.base_url}/mturk boto3's mturk client reaches this API\n")


def cmd_key_list(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    for key in client.requester_keys():
        out.write(f"{key['access_key_id']}  {key['created_at']}\n")


def cmd_key_delete(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    client.delete_requester_key(args.access_key_id)
    out.write(f"deleted {args.access_key_id}\n")


def connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--api-url, --api-key and --config, accepted before the command and after it."""
    parser.add_argument("--api-url", default=default,
                        help="the API's base URL (or CROWD_API_URL)")
    parser.add_argument("--api-key", default=default,
                        help="the client API key (or CROWD_API_KEY)")
    parser.add_argument("--config", default=default,
                        help="a JSON config file with api_url and api_key (or make run's "
                             ".local-stack.json)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="crowd", description=__doc__.split("\n\n")[0],
                                  epilog="Exit codes: 0 done, 1 the API refused or results "
                                         "are not ready, 2 bad usage or input, 3 the API could "
                                         "not be reached.")
    connection_options(top, None)
    # The same options after a command: SUPPRESS leaves a value given before it in place.
    common = argparse.ArgumentParser(add_help=False)
    connection_options(common, argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True)
    quote = commands.add_parser("quote", parents=[common],
                                help="get a firm quote: SPEC as JSON, @file or key=value ...")
    quote.add_argument("spec", nargs="+", metavar="SPEC")
    quote.set_defaults(run=cmd_quote)
    jobs = commands.add_parser("jobs", parents=[common], help="create, watch and read jobs")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)
    create = sub.add_parser("create", parents=[common], help="post a job from an items file")
    create.add_argument("--items", required=True, help="items.jsonl or items.csv")
    create.add_argument("--instructions", required=True, help="text, or @file")
    create.add_argument("--quote", help="a quote id (default: get a quote for the file)")
    create.add_argument("--task-type", default="categorical")
    create.add_argument("--redundancy", type=json.loads, help="a number, or the adaptive JSON object")
    create.add_argument("--reward-cents", type=int)
    create.add_argument("--cohort")
    create.add_argument("--gold-rate", type=float)
    create.add_argument("--labels", help="comma-separated labels (categorical)")
    create.add_argument("--schema", help="the answer schema as JSON or @file")
    create.add_argument("--title")
    create.add_argument("--not-applicable", choices=["allowed_with_reason", "not_allowed"])
    create.add_argument("--deadline", help="ISO 8601 with a time zone")
    create.add_argument("--pilot", type=int, help="pilot items (0: no pilot)")
    create.add_argument("--suite-size", type=int,
                        help="tasks a worker leases and answers together (1-20, default 1)")
    create.add_argument("--promotion", help="thresholds as JSON or @file")
    create.add_argument("--quality", help="gold and worker rules as JSON or @file")
    create.add_argument("--report", help="report settings as JSON or @file")
    create.add_argument("--set", action="append", metavar="KEY=JSON", help="any other job field")
    create.add_argument("--upload", choices=["auto", "always", "never"], default="auto",
                        help="send the file as an upload (auto: above 1 MiB or "
                             f"{INLINE_ITEMS} items) or its items inline")
    create.add_argument("--restart", action="store_true",
                        help="start a big file's upload over instead of resuming the "
                             "interrupted one")
    create.add_argument("--skip-bad-lines", action="store_true",
                        help="an uploaded file's bad lines are left out (and listed) "
                             "instead of failing the job")
    create.add_argument("--every", type=float, default=0.5, help=argparse.SUPPRESS)
    create.set_defaults(run=cmd_create)
    watch = sub.add_parser("watch", parents=[common],
                           help="live progress until the job is done")
    watch.add_argument("job_id")
    watch.add_argument("--until", default="done,failed,paused",
                       help="states that end the watch (comma-separated)")
    watch.add_argument("--every", type=float, default=2.0, help="seconds between polls")
    watch.add_argument("--timeout", type=float, help="give up after this many seconds")
    watch.set_defaults(run=cmd_watch)
    report = sub.add_parser("report", parents=[common],
                            help="the calibration report as tables")
    report.add_argument("job_id")
    report.add_argument("--round", type=int)
    report.add_argument("--html", metavar="FILE", help="write the HTML page with charts instead")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    report.set_defaults(run=cmd_report)
    results = sub.add_parser("results", parents=[common],
                             help="download every result, streamed to a file with progress")
    results.add_argument("job_id")
    results.add_argument("-o", "--output", required=True,
                         help="results.jsonl or results.csv (the format follows the suffix)")
    results.add_argument("--answers", action="store_true",
                         help="raw answers in crowd-kit's long form (task, worker, label)")
    results.add_argument("--wait", action="store_true",
                         help="wait until the job is done, failed or paused (else a job with "
                              "no published results is refused)")
    results.add_argument("--every", type=float, default=2.0, help="seconds between polls")
    results.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    results.set_defaults(run=cmd_results)
    promote = sub.add_parser("promote", parents=[common],
                             help="pilot -> calibration -> production")
    promote.add_argument("job_id")
    promote.add_argument("--instructions", help="revised instructions, or @file")
    promote.add_argument("--reason")
    promote.set_defaults(run=cmd_promote)
    stop = sub.add_parser("stop", parents=[common], help="end the job")
    stop.add_argument("job_id")
    stop.set_defaults(run=cmd_stop)
    show = sub.add_parser("show", parents=[common], help="the job as JSON")
    show.add_argument("job_id")
    show.set_defaults(run=cmd_show)
    listing = sub.add_parser("list", parents=[common], help="your jobs, newest first")
    listing.set_defaults(run=cmd_list)
    keys = commands.add_parser("requester-keys", parents=[common],
                               help="access keys for the MTurk-compatible API (<api>/mturk)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("create", parents=[common],
                            help="a new key pair (the secret is shown once; at most two)"
                            ).set_defaults(run=cmd_key_create)
    key_commands.add_parser("list", parents=[common],
                            help="your key ids and when each was made"
                            ).set_defaults(run=cmd_key_list)
    delete = key_commands.add_parser("delete", parents=[common], help="delete a key")
    delete.add_argument("access_key_id")
    delete.set_defaults(run=cmd_key_delete)
    return top


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None,
         out: TextIO | None = None) -> int:
    """Run one command; return its exit code."""
    args = parser().parse_args(argv)
    out = out or sys.stdout
    try:
        environ = dict(os.environ if environ is None else environ)
        url, key = settings(args, environ)
        args.upload_state_dir = config_path(args, environ).parent / "uploads"
        args.run(Client(url, key), args, out)
    except UsageError as error:
        sys.stderr.write(f"crowd: {error}\n")
        return EXIT_USAGE
    except (NotReady, JobFailed) as error:
        sys.stderr.write(f"crowd: {error} [{error.code}]\n")
        return EXIT_API
    except ApiError as error:
        where = f" (field: {error.field})" if error.field else ""
        sys.stderr.write(f"crowd: {error.message}{where} [{error.status} {error.code}]\n")
        return EXIT_UNREACHABLE if error.status == 0 else EXIT_API
    except KeyboardInterrupt:
        sys.stderr.write("\ncrowd: interrupted\n")
        return 130
    return 0


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
