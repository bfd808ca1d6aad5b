"""Every S3 key the platform writes, in one place: a job's objects live under jobs/{job}/.

    jobs/{job}/results.jsonl                     the published JSON Lines results
    jobs/{job}/results.csv                       the same results as CSV
    jobs/{job}/report.json                       the latest quality report
    jobs/{job}/online-model.json                 an adaptive job's online model
    jobs/{job}/rounds/{round}/report.json        one round's quality report
    jobs/{job}/rounds/{round}/answers/NNNNN.json    a shard's answers with their lineage
    jobs/{job}/rounds/{round}/votes/NNNNN.json      a shard's compact vote columns
    jobs/{job}/rounds/{round}/posteriors/NNNNN.json the fitted model's posteriors of a shard
    jobs/{job}/rounds/{round}/results/NNNNN.jsonl   a shard's JSON Lines results
    jobs/{job}/rounds/{round}/results/NNNNN.csv     a shard's CSV rows (no header)
    jobs/{job}/rounds/{round}/stats/NNNNN.json      a shard's report sums (merged by Publish)
    jobs/{job}/rounds/{round}/workers.json       the fitted model's accuracy of each worker
    jobs/{job}/rounds/{round}/calibration.json   the round's calibration map and its measures
    jobs/{job}/rounds/{round}/manifest.json      the round's shard list (the Distributed Map's)
    jobs/{job}/ingest/bad/NNNNN.json             an uploaded file's bad lines found by a range
    jobs/{job}/ingest/report.json                an uploaded file's ingest report
    uploads/{account}/{upload}.{format}          a client's uploaded item file
    uploads/{account}/{upload}.multipart.json    a multipart upload's terms and S3 upload id

Every key is derived from the job, the round and the shard number, so a repeated stage
writes the same object again.
"""
from __future__ import annotations


def _job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def _round_prefix(job_id: str, round_no: int) -> str:
    """Where one round's objects live."""
    return f"{_job_prefix(job_id)}/rounds/{round_no}"


def results_key(job_id: str) -> str:
    """The S3 key of a job's published JSON Lines results."""
    return f"{_job_prefix(job_id)}/results.jsonl"


def results_csv_key(job_id: str) -> str:
    """The S3 key of a job's published results as CSV."""
    return f"{_job_prefix(job_id)}/results.csv"


def report_key(job_id: str, round_no: int | None = None) -> str:
    """The S3 key of a job's latest quality report, or of one round's (written with its results)."""
    if round_no is None:
        return f"{_job_prefix(job_id)}/report.json"
    return f"{_round_prefix(job_id, round_no)}/report.json"


def online_model_key(job_id: str) -> str:
    """S3 key of an adaptive job's online model (the last refit's priors and confusions)."""
    return f"{_job_prefix(job_id)}/online-model.json"


def answers_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of one shard's answers with their lineage."""
    return f"{_round_prefix(job_id, round_no)}/answers/{shard:05d}.json"


def votes_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of one shard's compact vote columns (categorical jobs)."""
    return f"{_round_prefix(job_id, round_no)}/votes/{shard:05d}.json"


def part_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of one shard's JSON Lines results."""
    return f"{_round_prefix(job_id, round_no)}/results/{shard:05d}.jsonl"


def csv_part_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of one shard's CSV rows."""
    return f"{_round_prefix(job_id, round_no)}/results/{shard:05d}.csv"


def stats_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of one shard's report sums (chalicelib.domain.report.ReportStats)."""
    return f"{_round_prefix(job_id, round_no)}/stats/{shard:05d}.json"


def posteriors_key(job_id: str, round_no: int, shard: int) -> str:
    """S3 key of the fitted model's posteriors for one shard's items."""
    return f"{_round_prefix(job_id, round_no)}/posteriors/{shard:05d}.json"


def workers_key(job_id: str, round_no: int) -> str:
    """S3 key of the fitted model's estimate of each worker's accuracy."""
    return f"{_round_prefix(job_id, round_no)}/workers.json"


def calibration_key(job_id: str, round_no: int) -> str:
    """S3 key of the round's calibration map, with its measures on the round's gold items."""
    return f"{_round_prefix(job_id, round_no)}/calibration.json"


def manifest_key(job_id: str, round_no: int) -> str:
    """S3 key of the round's shard list, read by the Distributed Map."""
    return f"{_round_prefix(job_id, round_no)}/manifest.json"


def upload_key(account_id: str, upload_id: str, fmt: str) -> str:
    """S3 key of a client's uploaded item file (uploads/{account}/{upload}.{format}): the
    account in the key keeps one client's upload out of another's jobs."""
    return f"uploads/{account_id}/{upload_id}.{fmt}"


def multipart_key(account_id: str, upload_id: str) -> str:
    """S3 key of a multipart upload's terms (format, size, part size, S3's upload id, and
    whether it was aborted), under the client's account as its file is."""
    return f"uploads/{account_id}/{upload_id}.multipart.json"


def bad_lines_key(job_id: str, range_no: int) -> str:
    """S3 key of the bad lines one ingest range of an uploaded file found (the first ones)."""
    return f"{_job_prefix(job_id)}/ingest/bad/{range_no:05d}.json"


def ingest_report_key(job_id: str) -> str:
    """S3 key of an uploaded job's ingest report: lines, items, bad lines by line number."""
    return f"{_job_prefix(job_id)}/ingest/report.json"
