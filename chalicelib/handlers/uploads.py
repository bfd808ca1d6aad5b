"""Items from an uploaded file: the upload target a client PUTs its file to (a big file in
parts: started, its parts listed for a resume, completed or aborted), and the ingest
of a job posted naming it: planned in byte ranges (a planner message queues one message per
range), each range's lines read, checked by the rules of inline items and written, its bad
lines kept, and the job started (or failed, with its bad lines numbered in a report) once
every range is in."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chalicelib.domain import phases
from chalicelib.domain import uploads as u
from chalicelib.domain.ids import is_upload_id, item_id, new_id
from chalicelib.domain.jobs import parse_item
from chalicelib.domain.keys import (
    bad_lines_key, ingest_report_key, multipart_key, upload_key,
)
from chalicelib.domain.model import (
    ACTIVE, FAILED, INGESTING, PRODUCTION, Job, NewItem, Principal,
)
from chalicelib.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from chalicelib.handlers.platform import Platform, client_job


def create_upload(p: Platform, client: Principal, body: Any) -> dict[str, Any]:
    """An upload target: a presigned PUT of the client's file to a key of its own account,
    or for a big file (or when asked) a multipart upload with its part size and the URLs of
    its first parts; and the upload id a job names it by."""
    request = u.parse_upload_request(body)
    upload_id = new_id("up")
    content_type = u.CONTENT_TYPES[request.format]
    key = upload_key(client.account_id, upload_id, request.format)
    answer: dict[str, Any] = {"upload_id": upload_id, "format": request.format,
                              "bytes": request.bytes, "expires_in_seconds": u.UPLOAD_LINK_SECONDS,
                              "max_bytes": u.MAX_UPLOAD_BYTES}
    if request.part_bytes is None:
        url = p.blobs.upload_url(key, u.UPLOAD_LINK_SECONDS, content_type)
        return {**answer, "multipart": False, "url": url, "method": "PUT",
                "headers": {"Content-Type": content_type}}
    s3_upload = p.blobs.start_multipart(key, content_type)
    terms = {"format": request.format, "bytes": request.bytes,
             "part_bytes": request.part_bytes, "parts": request.parts, "s3_upload": s3_upload}
    p.blobs.put_text(multipart_key(client.account_id, upload_id), json.dumps(terms),
                     "application/json")
    first = list(range(1, min(request.parts, u.PART_URLS_PER_REQUEST) + 1))
    return {**answer, "multipart": True, "method": "PUT", "part_bytes": request.part_bytes,
            "parts": request.parts, "part_urls": _part_urls(p, key, s3_upload, first)}


def _part_urls(p: Platform, key: str, s3_upload: str, numbers: list[int]
               ) -> list[dict[str, Any]]:
    """Presigned UploadPart links for the numbered parts, each valid for the link time."""
    return [{"part_number": number,
             "url": p.blobs.part_url(key, s3_upload, number, u.UPLOAD_LINK_SECONDS)}
            for number in numbers]


def _terms(p: Platform, client: Principal, upload_id: str) -> dict[str, Any] | None:
    """The terms of the client's multipart upload of that id, None if it has none (an
    unknown id, another client's, or an upload sent in one PUT)."""
    if not is_upload_id(upload_id):
        return None
    try:
        terms: dict[str, Any] = json.loads(
            p.blobs.get_text(multipart_key(client.account_id, upload_id)))
    except NotFound:
        return None
    return terms


def _multipart(p: Platform, client: Principal, upload_id: str,
               terms: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The client's multipart upload: its object's key and its terms (read unless given).
    Another client's upload id, an unknown one or an aborted upload is NotFound."""
    terms = terms if terms is not None else _terms(p, client, upload_id)
    if terms is None:
        raise NotFound("no such multipart upload", field="upload_id", code="upload_not_found")
    if terms.get("aborted"):
        raise NotFound("the upload was aborted", field="upload_id", code="upload_not_found")
    return upload_key(client.account_id, upload_id, terms["format"]), terms


def part_urls(p: Platform, client: Principal, upload_id: str, body: Any) -> dict[str, Any]:
    """Presigned URLs for the parts a client names (to resume, or past the first batch)."""
    key, terms = _multipart(p, client, upload_id)
    numbers = u.parse_part_numbers(body, int(terms["parts"]))
    if p.blobs.head(key) is not None:
        raise Conflict("the upload is complete", field="upload_id", code="upload_complete")
    return {"upload_id": upload_id, "part_urls": _part_urls(p, key, terms["s3_upload"], numbers),
            "expires_in_seconds": u.UPLOAD_LINK_SECONDS}


def upload_status(p: Platform, client: Principal, upload_id: str) -> dict[str, Any]:
    """Where an upload stands: for a multipart upload in progress, the parts S3 holds
    (number, ETag, size) and those still missing, so a client resumes with the rest; for a
    complete one (or a single PUT that arrived), its size and ETag."""
    terms = _terms(p, client, upload_id)
    if terms is None:
        found = _uploaded(p, client, upload_id) if is_upload_id(upload_id) else None
        if found is None:
            raise NotFound("no such upload (a file sent in one PUT is found once it is "
                           "there)", field="upload_id", code="upload_not_found")
        return {"upload_id": upload_id, "state": "complete", "multipart": False, **found}
    key, terms = _multipart(p, client, upload_id, terms)
    view = {"upload_id": upload_id, "multipart": True, "format": terms["format"],
            "bytes": terms["bytes"], "part_bytes": terms["part_bytes"], "parts": terms["parts"]}
    done = p.blobs.head(key)
    if done is not None:
        return {**view, "state": "complete", "etag": done[1]}
    held = _held_parts(p, key, terms)
    return {**view, "state": "uploading",
            "uploaded": [{"part_number": number, "etag": etag, "bytes": size}
                         for number, (etag, size) in sorted(held.items())],
            "missing": u.missing_parts(held, int(terms["parts"]))}


def _held_parts(p: Platform, key: str, terms: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """The parts S3 holds of a multipart upload: number -> (ETag, size). An upload S3 no
    longer has (expired by the bucket's lifecycle rule, or completed under way) is
    NotFound unless its object is there."""
    try:
        listed = p.blobs.list_parts(key, terms["s3_upload"])
    except NotFound:
        raise NotFound("the upload's parts are gone (an upload left a day is dropped); "
                       "start a new upload", field="upload_id", code="upload_not_found") from None
    return {number: (etag, size) for number, etag, size in listed}


def _uploaded(p: Platform, client: Principal, upload_id: str) -> dict[str, Any] | None:
    """The format, size and ETag of a client's uploaded object, if it is there."""
    for fmt in u.FORMATS:
        found = p.blobs.head(upload_key(client.account_id, upload_id, fmt))
        if found is not None:
            return {"format": fmt, "bytes": found[0], "etag": found[1]}
    return None


def complete_upload(p: Platform, client: Principal, upload_id: str, body: Any
                    ) -> dict[str, Any]:
    """Join a multipart upload's parts into the file a job can name: every part must be
    there (409 upload_incomplete lists the missing ones), the ETags the client names must
    be those S3 holds, and the parts must add up to the declared size. A repeat after it
    is complete answers the same."""
    key, terms = _multipart(p, client, upload_id)
    parts, size = int(terms["parts"]), int(terms["bytes"])
    named = u.parse_completion(body, parts)
    view = {"upload_id": upload_id, "state": "complete", "multipart": True,
            "format": terms["format"], "bytes": size}
    done = p.blobs.head(key)
    if done is not None:
        return {**view, "bytes": done[0], "etag": done[1]}
    held = _held_parts(p, key, terms)
    missing = u.missing_parts(held, parts)
    if missing:
        raise Conflict(f"{len(missing)} of {parts} parts are not uploaded yet, the first "
                       f"part {missing[0]}", field="parts", code="upload_incomplete")
    for number, etag in named.items():
        if held[number][0] != etag:
            raise Conflict(f"part {number} holds other bytes (ETag {held[number][0]})",
                           field="parts", code="part_mismatch")
    total = sum(held_size for _, held_size in held.values())
    if total != size:
        raise Conflict(f"the parts hold {total} bytes; the upload was declared as {size}",
                       field="bytes", code="upload_size_mismatch")
    p.blobs.complete_multipart(key, terms["s3_upload"],
                               [(number, held[number][0]) for number in range(1, parts + 1)])
    done = p.blobs.head(key)
    assert done is not None
    return {**view, "bytes": done[0], "etag": done[1]}


def abort_upload(p: Platform, client: Principal, upload_id: str) -> dict[str, Any]:
    """Drop a multipart upload in progress and its parts; a complete one stays (it expires
    with the bucket's rule for uploads)."""
    key, terms = _multipart(p, client, upload_id)
    if p.blobs.head(key) is not None:
        raise Conflict("the upload is complete; it cannot be aborted", field="upload_id",
                       code="upload_complete")
    p.blobs.abort_multipart(key, terms["s3_upload"])
    p.blobs.put_text(multipart_key(client.account_id, upload_id),
                     json.dumps({**terms, "aborted": True}), "application/json")
    return {"upload_id": upload_id, "state": "aborted"}


def find_upload(p: Platform, client: Principal, upload_id: str) -> dict[str, Any]:
    """The client's uploaded file by its upload id: {"key", "format", "bytes", "etag"}.
    Looked for under the client's own account only, so another client's upload id finds
    nothing; the ETag pins the version the job was posted with. A multipart upload not yet
    complete is a Conflict (upload_incomplete)."""
    field = "items_from.upload_id"
    found = _uploaded(p, client, upload_id)
    if found is None:
        terms = _terms(p, client, upload_id)
        if terms is None or terms.get("aborted"):
            raise NotFound("no such upload (PUT the file to the upload's url first)",
                           field=field, code="upload_not_found")
        raise Conflict(f"the multipart upload is not complete: send its missing parts and "
                       f"POST /uploads/{upload_id}/complete", field=field,
                       code="upload_incomplete")
    size = found["bytes"]
    if size == 0:
        raise InvalidRequest("the uploaded file is empty", field=field)
    if size > u.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"an upload is at most {u.MAX_UPLOAD_BYTES} bytes; this one is "
                              f"{size}", field=field)
    return {"key": upload_key(client.account_id, upload_id, found["format"]), **found}


def plan_message(job: Job) -> dict[str, Any]:
    """The first planner message of an uploaded job's ingest."""
    return {"job_id": job.job_id, "plan": 0}


def plan_ranges(p: Platform, message: Mapping[str, Any]) -> None:
    """Queue a message per byte range of the job's file, PLAN_BATCH of them from `plan` on,
    and a planner message for the rest; a repeat queues the same ranges again (each is
    counted once)."""
    job = p.jobs.get_job(message["job_id"])
    if job is None or job.state != INGESTING or not job.upload:
        return
    start = int(message["plan"])
    stop = min(start + u.PLAN_BATCH, job.chunk_count)
    p.ingest_queue.send_many([{"job_id": job.job_id, "range": index}
                              for index in range(start, stop)])
    if stop < job.chunk_count:
        p.ingest_queue.send({"job_id": job.job_id, "plan": stop})


def ingest_range(p: Platform, message: Mapping[str, Any]) -> None:
    """Read one byte range of the job's file, write the items of the lines starting in it
    and count it with its summary; after the last range, start or fail the job. A repeated
    message writes nothing new."""
    job = p.jobs.get_job(message["job_id"])
    if job is None or job.state != INGESTING or not job.upload:
        return
    index = int(message["range"])
    if p.jobs.ingest_ranges(job.job_id, 1, index)[0] is not None:
        # Counted by an earlier delivery (e.g. of a batch that ran out of time): nothing to
        # write again, but perhaps the finish, if that delivery died before it.
        if job.chunks_written >= job.chunk_count:
            finish_ingest(p, job)
        return
    try:
        items, bad, lines = read_range(p, job, index)
    except (Conflict, NotFound):
        _fail(p, job, "the uploaded file was replaced or deleted after the job was posted; "
                      "upload it again and post a new job")
        return
    share = u.pilot_share(int(job.upload.get("pilot") or 0), job.chunk_count, index)
    items, pilot = _pick_pilot(items, share) if job.upload.get("pilot") else (items, 0)
    if bad:
        p.blobs.put_text(bad_lines_key(job.job_id, index),
                         json.dumps([line.as_dict() for line in bad[:u.BAD_LINES_LISTED]]),
                         "application/json")
    summary = {"lines": lines, "items": len(items), "bad": len(bad), "pilot": pilot}
    # Without skip_bad_lines a file with a bad line never starts: its items are not written.
    writes = items if not bad or job.upload.get("skip_bad_lines") else []
    if p.items.put_range(job.job_id, job.redundancy, writes, index, summary):
        job = p.jobs.get_job(job.job_id) or job
    # Also on a repeat: a crash after the last range was counted left the job ingesting.
    if job.chunks_written >= job.chunk_count and job.state == INGESTING:
        finish_ingest(p, job)


def read_range(p: Platform, job: Job, index: int) -> tuple[list[NewItem], list[u.BadLine], int]:
    """The items and bad lines of the lines starting in range `index`, and how many lines
    start there (blank lines and a CSV file's header among them)."""
    upload = job.upload
    size, fmt, key = int(upload["bytes"]), upload["format"], upload["key"]
    start, end = u.byte_range(index, size)
    etag = upload.get("etag")
    # Most lines end within READ_SLACK of the range's end; a longer one is read again.
    first, last = u.read_span(start, end, size, u.READ_SLACK)
    data = p.blobs.get_range(key, first, last, etag)
    lines = u.lines_starting_in(data, first, start, end, size)
    if lines and lines[-1].text is None and last < u.read_span(start, end, size)[1]:
        first, last = u.read_span(start, end, size)
        data = p.blobs.get_range(key, first, last, etag)
        lines = u.lines_starting_in(data, first, start, end, size)
    header: list[str] | None = None
    header_error: InvalidRequest | None = None
    if fmt == "csv":
        head = data if first == 0 else p.blobs.get_range(key, 0, min(size, u.MAX_LINE_BYTES),
                                                         etag)
        try:
            header = u.csv_header(head)
        except InvalidRequest as error:
            header_error = error
    items: list[NewItem] = []
    bad: list[u.BadLine] = []
    for line in lines:
        if fmt == "csv" and line.offset == 0:
            if header_error is not None:
                bad.append(u.BadLine(0, line.index, header_error.message))
            continue
        if line.text is None:
            bad.append(u.BadLine(line.offset, line.index,
                                 f"the line is longer than {u.MAX_LINE_BYTES} bytes"))
            continue
        if not line.text.strip():
            continue
        try:
            if header_error is not None:
                raise InvalidRequest("the file's header line is not valid")
            items.append(_item(fmt, line, header, size))
        except (InvalidRequest, PayloadTooLarge) as error:
            bad.append(u.BadLine(line.offset, line.index, error.message, error.field))
    return items, bad, len(lines)


def _item(fmt: str, line: u.Line, header: list[str] | None, size: int) -> NewItem:
    """The item a line holds, checked as an inline item; its id is its byte offset."""
    assert line.text is not None
    data, external, gold = parse_item(u.entry_of(fmt, line.text, header), "")
    if gold is not None:
        raise InvalidRequest("gold items are posted inline, not in a file", field="gold")
    return NewItem(item_id(line.offset, size), data, external)


def _pick_pilot(items: list[NewItem], share: int) -> tuple[list[NewItem], int]:
    """Hold every item but an evenly spread sample of `share` for production."""
    chosen = set(phases.pilot_indices(len(items), min(share, len(items))))
    return [item if k in chosen else replace(item, held=True)
            for k, item in enumerate(items)], len(chosen)


def finish_ingest(p: Platform, job: Job) -> None:
    """Every range is in: number the bad lines, write the report, and start the job, or fail
    it when it has bad lines the client did not say to skip, or when its items are not as
    many as the quote covers (its money stays unspent, as for any job that failed)."""
    summaries = p.jobs.ingest_ranges(job.job_id, job.chunk_count)
    if any(summary is None for summary in summaries):
        return
    counted = [summary for summary in summaries if summary is not None]
    report = ingest_summary(p, job, counted)
    error = None
    if report["bad_lines"] and not job.upload.get("skip_bad_lines"):
        error = (f"the file has {report['bad_lines']} bad line(s), the first at line "
                 f"{report['listed'][0]['line']}; GET /jobs/{job.job_id}/ingest lists them "
                 "(a job from a new quote with skip_bad_lines leaves them out)")
    elif report["items"] != job.item_count:
        error = (f"the file holds {report['items']} items; the quote covers "
                 f"{job.item_count}")
    report["error"] = error
    p.blobs.put_text(ingest_report_key(job.job_id), json.dumps(report), "application/json")
    if error is not None:
        _fail(p, job, error)
        return
    pilot = sum(summary["pilot"] for summary in counted)
    phase = job.phase if pilot else PRODUCTION
    p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, pilot_items=pilot, phase=phase,
                      record=phases.record(p.now(), INGESTING, job.phase, ACTIVE, phase,
                                           "system", "every item ingested"))


def _fail(p: Platform, job: Job, error: str) -> None:
    """An ingesting job that cannot start fails with the reason (its quote stays used; its
    money is unspent, as for any job that failed)."""
    p.jobs.transition(job.job_id, (INGESTING,), FAILED, error=error,
                      record=phases.record(p.now(), INGESTING, job.phase, FAILED, job.phase,
                                           "system", "the uploaded file was not accepted"))


def ingest_summary(p: Platform, job: Job, summaries: list[dict[str, int]]) -> dict[str, Any]:
    """The file's counts and its first BAD_LINES_LISTED bad lines numbered in the file (a
    range's line numbers follow the lines of the ranges before it); only ranges with bad
    lines are read, until enough are listed."""
    listed: list[dict[str, Any]] = []
    before = 0
    for index, summary in enumerate(summaries):
        if summary["bad"] and len(listed) < u.BAD_LINES_LISTED:
            for entry in json.loads(p.blobs.get_text(bad_lines_key(job.job_id, index))):
                if len(listed) >= u.BAD_LINES_LISTED:
                    break
                listed.append({"line": before + entry["index"] + 1, "offset": entry["offset"],
                               "message": entry["message"], "field": entry["field"]})
        before += summary["lines"]
    bad = sum(summary["bad"] for summary in summaries)
    return {"format": job.upload["format"], "bytes": job.upload["bytes"],
            "skip_bad_lines": bool(job.upload.get("skip_bad_lines")), "lines": before,
            "items": sum(summary["items"] for summary in summaries), "bad_lines": bad,
            "listed": listed, "truncated": bad > len(listed)}


def ingest_report(p: Platform, client: Principal, job_id: str) -> dict[str, Any]:
    """How a job's ingest went: for a file, its lines, items and bad lines by line number
    once every range is read, its ranges read until then; for inline items, the chunks."""
    job = client_job(p, client, job_id)
    progress = {"job_id": job.job_id, "state": job.state, "chunks": job.chunk_count,
                "chunks_written": job.chunks_written}
    if not job.upload:
        return {**progress, "source": "inline"}
    try:
        report = json.loads(p.blobs.get_text(ingest_report_key(job.job_id)))
    except NotFound:
        report = {"format": job.upload["format"], "bytes": job.upload["bytes"],
                  "skip_bad_lines": bool(job.upload.get("skip_bad_lines"))}
    return {**progress, "source": "upload", **report}

