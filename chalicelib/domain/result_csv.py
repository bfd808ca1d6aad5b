"""The results as CSV: one row per item, the columns a spreadsheet or a data frame wants.

    item_id, external_id, answer, confidence, n_answers, not_applicable, method, probabilities,
    confidence_raw

- answer: the label, the value or the text of the answer (any other answer object as compact
  JSON); empty for an N/A result;
- confidence, n_answers: numbers as in the JSON line (confidence empty when there is none);
- not_applicable: `true` or `false`;
- method: how the answer was reached (e.g. DawidSkene, rover, median);
- probabilities: the label probabilities as compact JSON text (`{"positive":0.98,...}`),
  empty for text and numeric results;
- confidence_raw: the model's own confidence before calibration (the last column, so files
  read by position before it was added read the same).

A text cell (external_id, a label or a text answer: written by clients and workers) that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a
spreadsheet shows it as text instead of running it as a formula; numbers are left as they are.
The lineage (each answer with its worker) is in the JSON Lines download only. Quoting is the
csv module's excel dialect (RFC 4180: a field with a comma, a quote or a line break is quoted),
rows end with CRLF, the text is UTF-8 without a byte-order mark.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

COLUMNS = ("item_id", "external_id", "answer", "confidence", "n_answers", "not_applicable",
           "method", "probabilities", "confidence_raw")
FORMULA_STARTS = frozenset("=+-@\t\r")


def answer_cell(answer: Any) -> Any:
    """The answer as one cell: its label, value or text, else its JSON; empty for none."""
    if answer is None:
        return ""
    if isinstance(answer, dict):
        for key in ("label", "value", "text"):
            if key in answer:
                return _text(answer[key]) if isinstance(answer[key], str) else answer[key]
    return _text(_json(answer))


def _text(value: str) -> str:
    """A text cell a spreadsheet will not read as a formula."""
    return "'" + value if value[:1] in FORMULA_STARTS else value


def row(line: dict[str, Any]) -> list[Any]:
    """The CSV row of a result line."""
    probabilities = line.get("probabilities")
    confidence = line.get("confidence")
    raw = line.get("confidence_raw", confidence)
    return [line["item_id"], _text(line.get("external_id") or ""), answer_cell(line.get("answer")),
            "" if confidence is None else confidence, line.get("n_answers", 0),
            "true" if line.get("not_applicable") else "false", line.get("method") or "",
            "" if probabilities is None else _json(probabilities), "" if raw is None else raw]


def header() -> str:
    """The header line."""
    return rows([], with_header=True)


def rows(lines: Iterable[dict[str, Any]], with_header: bool = False) -> str:
    """CSV text of the result lines (a shard's part has no header: Publish writes it once)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if with_header:
        writer.writerow(COLUMNS)
    writer.writerows(row(line) for line in lines)
    return buffer.getvalue()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
