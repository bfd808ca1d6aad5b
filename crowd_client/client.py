"""`Client`: the marketplace's HTTPS API for clients, from Python.

Standard library only (pandas is needed only for `results_frame`). Requests that fail with
429 or 5xx, or do not connect, are retried with exponential backoff and jitter; every other
error is raised at once as `ApiError` with the API's code, message and field.

    from crowd_client import Client
    client = Client("http://127.0.0.1:8000", "ck_...")
    quote = client.quote(task_type="categorical", items=2, redundancy=3)
    job = client.create_job(quote["quote_id"], items=[{"data": {"text": "..."}}, ...],
                            instructions="...", answer_schema={"labels": ["pos", "neg"]})
    client.wait(job["job_id"])
    rows = client.results(job["job_id"])
"""
from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

RETRY_STATUSES = {429, 500, 502, 503, 504}
# Above this a file is uploaded in parts (the API's threshold too), resumable.
MULTIPART_ABOVE_BYTES = 64 * 1024 * 1024
# Part URLs asked for at a time: each lasts an hour, so a slow link asks again as it goes.
PART_URL_BATCH = 10
DOWNLOAD_CHUNK_BYTES = 256 * 1024
FINAL_STATES = ("done", "failed")


class ApiError(Exception):
    """An error answer from the API (or no answer at all: status 0)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field: {field})" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field
        self.body = dict(body or {})


class Client:
    """A client account's view of the API. `base_url` as the API serves it (e.g.
    `https://abc.execute-api.eu-west-1.amazonaws.com/api`), `api_key` the client key."""

    def __init__(self, base_url: str, api_key: str, *, retries: int = 4, backoff: float = 0.5,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url or not api_key:
            raise ValueError("the API URL and the API key are both needed")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.retries, self.backoff, self.timeout, self._sleep = retries, backoff, timeout, sleep

    # --- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                query: Mapping[str, Any] | None = None, accept: str = "application/json",
                idempotency_key: str | None = None) -> Any:
        """One API call: the parsed JSON answer (text for non-JSON), retried on 429/5xx.

        Every POST carries an Idempotency-Key (a fresh one per call unless given), the same
        on each retry, so a retried create or payment happens once."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = {**self._credentials(), "Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _parse(response.read(), response.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as error:
                payload = _parse(error.read(), error.headers.get("Content-Type", ""))
                if error.code in RETRY_STATUSES and attempt < self.retries:
                    self._wait(attempt, error.headers.get("Retry-After"))
                    continue
                raise _api_error(error.code, payload) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt < self.retries:
                    self._wait(attempt, None)
                    continue
                reason = getattr(error, "reason", error)
                raise ApiError(0, "unreachable", f"cannot reach {self.base_url}: {reason}") from None
        raise AssertionError("unreachable")

    def _credentials(self) -> dict[str, str]:
        """The header that says who calls: a client key."""
        return {"X-Api-Key": self.api_key}

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        if retry_after and retry_after.isdigit():
            self._sleep(float(retry_after))
        else:
            self._sleep(self.backoff * 2 ** attempt * (0.5 + random.random()))

    # --- quotes and jobs -----------------------------------------------------------------------

    def quote(self, **spec: Any) -> dict[str, Any]:
        """A firm quote for a spec (task_type, items, redundancy, reward_cents, cohort, gold_rate)."""
        return self.request("POST", "/quotes", spec)

    def create_job(self, quote_id: str, items: list[Mapping[str, Any]], **settings: Any
                   ) -> dict[str, Any]:
        """Post a job: items as [{"data": {...}, "external_id": ..., "gold": ...}], and the job's
        settings (instructions, answer_schema, not_applicable, pilot, promotion, quality, ...)."""
        return self.request("POST", "/jobs", {"quote_id": quote_id, "items": items, **settings})

    def upload(self, path: str | Path, fmt: str,
               progress: Callable[[int, int], None] | None = None, *,
               state: str | Path | None = None, key: Mapping[str, Any] | None = None,
               restart: bool = False, multipart_above: int = MULTIPART_ABOVE_BYTES) -> str:
        """Upload an item file (fmt "jsonl" or "csv") and return its upload id for
        create_job_from_upload; progress(sent, total) is called as the bytes go, streamed from
        disk (the file is never held in memory).

        Up to `multipart_above` bytes it is one presigned PUT (POST /uploads), sent again from
        the start if it fails (up to `retries` times). Above, it goes in parts: with a
        `state` file the upload is remembered there, under `key` (what identifies the file:
        by default its path, size and modification time), so a call after an interruption
        asks the API which parts it holds and sends only the missing ones; a changed file, or
        `restart`, aborts the earlier upload and starts over."""
        file = Path(path)
        size = file.stat().st_size
        if size <= multipart_above:
            return self._upload_one(file, fmt, size, progress)
        key = dict(key) if key is not None else file_key(file)
        return self._upload_parts(file, fmt, size, progress, Path(state) if state else None,
                                  key, restart)

    def _upload_one(self, path: Path, fmt: str, size: int,
                    progress: Callable[[int, int], None] | None) -> str:
        """One presigned PUT of the whole file."""
        target = self.request("POST", "/uploads", {"format": fmt, "bytes": size})
        headers = {**target.get("headers", {}), "Content-Length": str(size)}
        self._put(target["url"], path, 0, size, size, progress, headers,
                  target.get("method", "PUT"))
        return str(target["upload_id"])

    def _upload_parts(self, path: Path, fmt: str, size: int,
                      progress: Callable[[int, int], None] | None, state: Path | None,
                      key: dict[str, Any], restart: bool) -> str:
        """A multipart upload: resumed from the state file when it names this file, else
        started; the missing parts sent, URLs asked for PART_URL_BATCH at a time (each lasts
        an hour), then completed."""
        saved = _read_state(state)
        status: dict[str, Any] | None = None
        if saved is not None and saved.get("key") == key and not restart:
            status = self._upload_status(str(saved["upload_id"]))
        elif saved is not None:
            self._abort_upload(str(saved["upload_id"]))
        if status is not None and status.get("state") == "complete":
            _clear_state(state)
            return str(status["upload_id"])
        urls: dict[int, str] = {}
        if status is None:
            _clear_state(state)
            status = self.request("POST", "/uploads", {"format": fmt, "bytes": size,
                                                       "multipart": True})
            _write_state(state, {"key": key, "upload_id": status["upload_id"]})
            urls = {entry["part_number"]: entry["url"] for entry in status["part_urls"]}
        upload_id, part_bytes = str(status["upload_id"]), int(status["part_bytes"])
        etags = {entry["part_number"]: entry["etag"] for entry in status.get("uploaded", [])}
        sent = sum(int(entry["bytes"]) for entry in status.get("uploaded", []))
        missing = [n for n in range(1, int(status["parts"]) + 1) if n not in etags]
        if progress is not None:
            progress(sent, size)
        for at in range(0, len(missing), PART_URL_BATCH):
            batch = missing[at:at + PART_URL_BATCH]
            if any(number not in urls for number in batch):
                answer = self.request("POST", f"/uploads/{upload_id}/parts", {"parts": batch})
                urls = {entry["part_number"]: entry["url"] for entry in answer["part_urls"]}
            for number in batch:
                start = (number - 1) * part_bytes
                length = min(size, start + part_bytes) - start
                etags[number] = self._put(urls[number], path, start, length, size,
                                          _offset(progress, sent), {}, "PUT")
                sent += length
        self.request("POST", f"/uploads/{upload_id}/complete", {"parts": [
            {"part_number": number, "etag": etag} for number, etag in sorted(etags.items())]})
        _clear_state(state)
        return upload_id

    def _upload_status(self, upload_id: str) -> dict[str, Any] | None:
        """Where an earlier upload stands; None if the API no longer has it."""
        try:
            return self.request("GET", f"/uploads/{upload_id}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def _abort_upload(self, upload_id: str) -> None:
        """Drop an earlier upload's parts (gone or complete already: nothing to do)."""
        try:
            self.request("DELETE", f"/uploads/{upload_id}")
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    def _put(self, url: str, path: Path, start: int, length: int, total: int,
             progress: Callable[[int, int], None] | None, headers: Mapping[str, str],
             method: str) -> str:
        """PUT bytes [start, start + length) of the file to a presigned URL, streamed; its
        ETag. A PUT that fails to connect or with 5xx is sent again (up to `retries`
        times)."""
        headers = {**headers, "Content-Length": str(length)}
        for attempt in range(self.retries + 1):
            with open(path, "rb") as handle:
                handle.seek(start)
                body = _Progress(_Slice(handle, length), total, progress)
                request = urllib.request.Request(url, data=body, headers=headers, method=method)
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout) as response:
                        response.read()
                        return str(response.headers.get("ETag", ""))
                except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                    status = getattr(error, "code", 0)
                    if attempt < self.retries and (status == 0 or status in RETRY_STATUSES):
                        self._wait(attempt, None)
                        continue
                    raise ApiError(status, "upload_failed",
                                   f"the upload of {path} failed: {error} (the same call "
                                   "again resumes a file sent in parts)") from None
        raise AssertionError("unreachable")

    def create_job_from_upload(self, quote_id: str, upload_id: str, *,
                               skip_bad_lines: bool = False, **settings: Any) -> dict[str, Any]:
        """Post a job whose items are an uploaded file (upload()); its lines are checked as
        it is ingested: with bad lines the job fails (ingest_report lists them by line
        number) unless skip_bad_lines, which leaves them out."""
        body = {"quote_id": quote_id, "items_from": {"upload_id": upload_id}, **settings}
        if skip_bad_lines:
            body["skip_bad_lines"] = True
        return self.request("POST", "/jobs", body)

    def ingest_report(self, job_id: str) -> dict[str, Any]:
        """How a job's items went in: for an uploaded file, its lines, items and bad lines."""
        return self.request("GET", f"/jobs/{_quoted(job_id)}/ingest")

    def job(self, job_id: str) -> dict[str, Any]:
        """A job with its counts."""
        return self.request("GET", f"/jobs/{_quoted(job_id)}")

    def jobs(self) -> Iterator[dict[str, Any]]:
        """Every job of the account, newest first (pages followed)."""
        yield from self._pages("/jobs", "jobs")

    def watch(self, job_id: str, until: tuple[str, ...] = FINAL_STATES, every: float = 2.0,
              timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The job every `every` seconds until it reaches one of `until` (the last one yielded)."""
        started = time.monotonic()
        while True:
            job = self.job(job_id)
            yield job
            if job["state"] in until:
                return
            if timeout is not None and time.monotonic() - started > timeout:
                raise ApiError(0, "timeout", f"job {job_id} is still {job['state']} after {timeout} s")
            self._sleep(every)

    def wait(self, job_id: str, until: tuple[str, ...] = FINAL_STATES, every: float = 2.0,
             timeout: float | None = None) -> dict[str, Any]:
        """Block until the job reaches one of `until`; return it."""
        job: dict[str, Any] = {}
        for job in self.watch(job_id, until, every, timeout):
            pass
        return job

    def promote(self, job_id: str, instructions: str | None = None,
                reason: str | None = None) -> dict[str, Any]:
        """Pilot -> calibration -> production (optionally with revised instructions)."""
        body = {k: v for k, v in {"instructions": instructions, "reason": reason}.items() if v}
        return self.request("POST", f"/jobs/{_quoted(job_id)}/promote", body)

    def stop(self, job_id: str) -> dict[str, Any]:
        """End the job."""
        return self.request("POST", f"/jobs/{_quoted(job_id)}/stop")

    def report(self, job_id: str, round: int | None = None) -> dict[str, Any]:
        """The quality report of the latest round (or of `round`)."""
        return self.request("GET", f"/jobs/{_quoted(job_id)}/report", query={"round": round})

    def report_html(self, job_id: str, round: int | None = None) -> str:
        """The report as a self-contained HTML page with charts."""
        return self.request("GET", f"/jobs/{_quoted(job_id)}/report",
                            query={"round": round, "format": "html"}, accept="text/html")

    # --- results -------------------------------------------------------------------------------

    def iter_results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every result line of the job (pages followed)."""
        yield from self._pages(f"/jobs/{_quoted(job_id)}/results", "results")

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """Every result line of the job."""
        return list(self.iter_results(job_id))

    def results_frame(self, job_id: str) -> Any:
        """The results as a pandas DataFrame: one row per item (item_id, external_id, answer,
        confidence (calibrated on the round's gold), confidence_raw (the model's own),
        n_answers, not_applicable, method)."""
        pandas = _pandas()
        rows = [{"item_id": r["item_id"], "external_id": r.get("external_id"),
                 "answer": _answer_value(r.get("answer")), "confidence": r["confidence"],
                 "confidence_raw": r.get("confidence_raw", r["confidence"]),
                 "n_answers": r["n_answers"], "not_applicable": r["not_applicable"],
                 "method": r.get("method")} for r in self.iter_results(job_id)]
        return pandas.DataFrame(rows, columns=["item_id", "external_id", "answer", "confidence",
                                               "confidence_raw", "n_answers", "not_applicable",
                                               "method"])

    def iter_answers(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every raw answer in crowd-kit's long form: {"task", "worker", "label"} (the label,
        value or text; "not_applicable" for N/A), to aggregate yourself (pages followed)."""
        for r in self.iter_results(job_id):
            for a in r.get("answers", []):
                yield {"task": r.get("external_id") or r["item_id"], "worker": a["worker_id"],
                       "label": _answer_value(a["answer"])}

    def answers(self, job_id: str) -> list[dict[str, Any]]:
        """Every raw answer in crowd-kit's long form (see iter_answers)."""
        return list(self.iter_answers(job_id))

    def download_link(self, job_id: str, format: str = "jsonl") -> dict[str, Any]:
        """A time-limited link to every result as JSON Lines ("jsonl") or CSV ("csv"), with
        `url`, `expires_in_seconds` and `result_count`."""
        return self.request("GET", f"/jobs/{_quoted(job_id)}/results/download",
                            query={"format": format})

    def download_results(self, job_id: str, path: str | Path, format: str = "jsonl",
                         progress: Callable[[int, int | None, int], None] | None = None
                         ) -> dict[str, Any]:
        """Stream every result as JSON Lines or CSV into the file at path, a chunk at a time
        (a million results never sit in memory); progress(bytes, total bytes or None, rows)
        after each chunk. The file is written as `<path>.part` and renamed when complete, so
        a download that stops leaves no file that looks whole. Returns the link's answer with
        the `bytes` and `rows` written (rows: lines, less the CSV header)."""
        link = self.download_link(job_id, format)
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        done = lines = 0
        # A presigned storage link: the API key is not sent to it.
        request = urllib.request.Request(link["url"], headers={"Accept": "*/*"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response, \
                    partial.open("wb") as handle:
                size = response.headers.get("Content-Length") or ""
                total = int(size) if size.isdigit() else None
                while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                    handle.write(chunk)
                    done += len(chunk)
                    lines += chunk.count(b"\n")
                    if progress is not None:
                        progress(done, total, _rows(lines, format))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            partial.unlink(missing_ok=True)
            status = error.code if isinstance(error, urllib.error.HTTPError) else 0
            reason = getattr(error, "reason", error)
            raise ApiError(status, "download_failed",
                           f"the download of {job_id}'s results stopped: {reason}; "
                           "run it again for a fresh link") from None
        partial.replace(target)
        return {**link, "bytes": done, "rows": _rows(lines, format)}

    def answers_frame(self, job_id: str) -> Any:
        """The raw answers as a DataFrame with crowd-kit's columns task, worker, label."""
        return _pandas().DataFrame(self.answers(job_id), columns=["task", "worker", "label"])

    # --- requester keys (the MTurk-compatible API) ----------------------------------------------

    def create_requester_key(self) -> dict[str, Any]:
        """A requester access key pair for `<api>/mturk`; its `secret_access_key` is in this
        answer only. At most two at a time: make the next, then delete the old one."""
        return self.request("POST", "/requester-keys")

    def requester_keys(self) -> list[dict[str, Any]]:
        """The account's requester key ids and when each was made."""
        return self.request("GET", "/requester-keys")["requester_keys"]

    def delete_requester_key(self, access_key_id: str) -> None:
        """Delete a requester key: requests it signs are refused within a minute."""
        self.request("DELETE", f"/requester-keys/{_quoted(access_key_id)}")

    # --- webhooks ------------------------------------------------------------------------------

    def create_webhook(self, url: str, events: list[str] | None = None,
                       description: str | None = None) -> dict[str, Any]:
        """Register an endpoint; the answer holds its signing `secret` (shown this once)."""
        body = {k: v for k, v in {"url": url, "events": events,
                                  "description": description}.items() if v is not None}
        return self.request("POST", "/webhooks/endpoints", body)

    def webhooks(self) -> list[dict[str, Any]]:
        """The account's endpoints."""
        return self.request("GET", "/webhooks/endpoints")["endpoints"]

    def delete_webhook(self, endpoint_id: str) -> None:
        """Stop sending events to an endpoint."""
        self.request("DELETE", f"/webhooks/endpoints/{_quoted(endpoint_id)}")

    def deliveries(self, job_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Webhook deliveries, newest first, each with its attempts."""
        cursor = None
        while True:
            page = self.request("GET", "/webhooks/deliveries",
                                query={"limit": 100, "cursor": cursor, "job_id": job_id})
            yield from page["deliveries"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def replay_delivery(self, delivery_id: str) -> dict[str, Any]:
        """Send a delivery's event again (a new delivery)."""
        return self.request("POST", f"/webhooks/deliveries/{_quoted(delivery_id)}/replay")

    def _pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.request("GET", path, query={"limit": 1000, "cursor": cursor})
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return


SIGNATURE_HEADER = "Crowd-Signature"


class WorkerClient(Client):
    """A worker's view of the API: leasing and answering task suites with a worker token
    (sent as `Authorization: Bearer`), with the same retries and errors as `Client`.

        worker = WorkerClient("http://127.0.0.1:8000", "wt_...")
        suite = worker.lease_suite(5, job_id="job_...")
        while suite:
            answers = [{"assignment_id": t["assignment_id"], "answer": {"label": "pos"}}
                       for t in suite["tasks"]]
            suite = worker.submit_suite(answers, next_count=5, job_id="job_...")["next"]
    """

    def _credentials(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def lease_suite(self, count: int, job_id: str | None = None) -> dict[str, Any] | None:
        """Lease up to count tasks of one job (at most its suite_size): {"tasks": [...],
        "suite_size"}, or None when there is nothing for this worker."""
        leased = self.request("GET", "/tasks/next", query={"count": count, "job_id": job_id})
        return leased if isinstance(leased, dict) else None

    def submit_suite(self, answers: list[Mapping[str, Any]], next_count: int | None = None,
                     job_id: str | None = None, idempotency_key: str | None = None
                     ) -> dict[str, Any]:
        """Submit a suite's answers ([{"assignment_id", "answer": {...}} or {"assignment_id",
        "not_applicable": "reason"}]); {"results": [...], "next"}. With next_count, the next
        suite (of job_id, when given) is leased in the same request."""
        body: dict[str, Any] = {"answers": list(answers)}
        if next_count is not None:
            body["next"] = {"count": next_count, **({"job_id": job_id} if job_id else {})}
        result: dict[str, Any] = self.request("POST", "/assignments/submit", body,
                                              idempotency_key=idempotency_key)
        return result


def verify_signature(payload: bytes | str, header: str | None, secret: str,
                     tolerance: float = 300.0, now: float | None = None) -> bool:
    """True when `header` (the request's `Crowd-Signature`, `t=<unix>,v1=<hex>`) is this
    endpoint secret's HMAC-SHA256 of `"<t>.<raw body>"` and t is within `tolerance` seconds
    of now: a forged body fails the first, a replayed old request the second. Pass the raw
    body exactly as received (before any JSON parsing)."""
    import hashlib
    import hmac

    if not header:
        return False
    parts: dict[str, list[str]] = {}
    for piece in header.split(","):
        name, _, value = piece.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    expected = hmac.new(secret.encode("utf-8"), str(timestamp).encode() + b"." + body,
                        hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, candidate.encode("utf-8"))
               for candidate in parts.get("v1", []))


def _rows(lines: int, format: str) -> int:
    """Result rows in a download of that many lines so far (a CSV's first is its header)."""
    return max(0, lines - 1) if format == "csv" else lines


def file_key(path: str | Path) -> dict[str, Any]:
    """What identifies a file for resuming its upload: its absolute path, size and
    modification time (any change to it starts the upload over)."""
    file = Path(path).resolve()
    stat = file.stat()
    return {"path": str(file), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_state(state: Path | None) -> dict[str, Any] | None:
    """The upload a state file remembers, if it holds one."""
    if state is None or not state.exists():
        return None
    try:
        saved = json.loads(state.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return saved if isinstance(saved, dict) and "upload_id" in saved else None


def _write_state(state: Path | None, saved: Mapping[str, Any]) -> None:
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(saved), encoding="utf-8")


def _clear_state(state: Path | None) -> None:
    if state is not None:
        state.unlink(missing_ok=True)


def _offset(progress: Callable[[int, int], None] | None, base: int
            ) -> Callable[[int, int], None] | None:
    """progress told of a part's bytes as bytes of the whole file, after `base` sent."""
    if progress is None:
        return None
    return lambda sent, total: progress(base + sent, total)


class _Slice:
    """At most `length` bytes of an open file from where it stands."""

    def __init__(self, handle: Any, length: int) -> None:
        self._handle, self._left = handle, length

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        block = self._handle.read(size)
        self._left -= len(block)
        return block


class _Progress:
    """A file read for an upload, telling progress(sent, total) as it is read."""

    def __init__(self, handle: Any, total: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self._handle, self._total, self._progress, self._sent = handle, total, progress, 0

    def read(self, size: int = -1) -> bytes:
        block = self._handle.read(size)
        self._sent += len(block)
        if self._progress is not None:
            self._progress(self._sent, self._total)
        return block


def _quoted(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _parse(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _api_error(status: int, payload: Any) -> ApiError:
    if isinstance(payload, Mapping) and "error" in payload:
        return ApiError(status, str(payload["error"]), str(payload.get("message", "")),
                        payload.get("field"), payload)
    return ApiError(status, "http_error", str(payload)[:500] or f"HTTP {status}")


def _answer_value(answer: Mapping[str, Any] | None) -> Any:
    if answer is None:
        return None
    if "not_applicable" in answer:
        return "not_applicable"
    for key in ("label", "value", "text"):
        if key in answer:
            return answer[key]
    return json.dumps(answer, ensure_ascii=False)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("results as a DataFrame need pandas: pip install pandas") from None
    return pandas
