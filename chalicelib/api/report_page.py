"""The quality report as one self-contained HTML page with SVG bar charts (no scripts).

Everything that comes from clients or workers (labels, ids, reasons, attribute values) is
escaped, so a label cannot inject markup into the page.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

BAR_WIDTH = 320
ROW_HEIGHT = 22
LABEL_WIDTH = 180

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1d1d1f}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
svg text{font-size:12px;fill:#1d1d1f}.legend span{display:inline-block;margin-right:1rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""
COLOURS = ("#2f6fdf", "#f0a030", "#6a9f4a")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def bar_chart(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[str],
              title: str) -> str:
    """Horizontal bars in [0, 1]: one row per label, one bar per series (None: no bar)."""
    per_row = len(series) * 8 + 6
    height = max(len(rows), 1) * max(per_row, ROW_HEIGHT)
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{LABEL_WIDTH + BAR_WIDTH + 60}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for index, (label, values) in enumerate(rows):
        top = index * max(per_row, ROW_HEIGHT)
        parts.append(f'<text x="0" y="{top + 14}">{escape(label[:28])}</text>')
        for number, value in enumerate(values):
            if value is None:
                continue
            width = round(max(0.0, min(1.0, value)) * BAR_WIDTH, 1)
            y = top + 3 + number * 8
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="7" '
                         f'fill="{COLOURS[number % len(COLOURS)]}"><title>{escape(series[number])}: '
                         f'{value:.3f}</title></rect>')
        shown = [v for v in values if v is not None]
        if shown:
            parts.append(f'<text x="{LABEL_WIDTH + BAR_WIDTH + 6}" y="{top + 14}">'
                         f'{" / ".join(f"{v:.2f}" for v in shown)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><span class="swatch" style="background:{COLOURS[n % len(COLOURS)]}">'
                     f'</span>{escape(name)}</span>' for n, name in enumerate(series))
    return f'<figure><figcaption>{escape(title)}</figcaption><div class="legend">{legend}</div>{"".join(parts)}</figure>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any, numeric: bool = False) -> str:
    return f'<td class="n">{_number(value)}</td>' if numeric else f"<td>{escape(str(value))}</td>"


def _distributions(report: Mapping[str, Any]) -> str:
    results = report.get("result_distribution") or {}
    answers = report.get("answer_distribution") or {}
    expected = report.get("expected_distribution") or {}
    labels = list(dict.fromkeys([*results, *answers, *expected]))
    if not labels:
        return ""
    series = ["results", "answers"] + (["expected"] if expected else [])
    rows = [(label, [results.get(label), answers.get(label)]
             + ([expected.get(label)] if expected else [])) for label in labels]
    distance = report.get("distance_from_expected")
    note = (f"<p>Distance of the results from the expected shares (total variation): "
            f"{_number(distance)}</p>" if distance is not None else "")
    return "<h2>Labels</h2>" + bar_chart(rows, series, "Share of each label") + note


def _workers(report: Mapping[str, Any]) -> str:
    workers = report.get("worker_summary") or []
    if not workers:
        return ""
    has_gold = any("gold_accuracy" in w for w in workers)
    has_model = any("estimated_accuracy" in w for w in workers)
    series = ["agreement with results"] + (["estimated accuracy"] if has_model else []) \
        + (["gold accuracy"] if has_gold else [])
    rows = [(w["worker_id"], [w["agreement_with_results"]]
             + ([w.get("estimated_accuracy")] if has_model else [])
             + ([w.get("gold_accuracy")] if has_gold else []))
            for w in sorted(workers, key=lambda w: w["agreement_with_results"])]
    return "<h2>Workers</h2>" + bar_chart(rows, series, "Per worker, lowest agreement first")


def _attributes(report: Mapping[str, Any]) -> str:
    parts = []
    for name, breakdown in (report.get("by_attribute") or {}).items():
        rows = [[_cell(value), _cell(entry["items"], True), _cell(entry["krippendorff_alpha"], True),
                 _cell(", ".join(f"{label} {share:.2f}" for label, share
                                 in entry["result_distribution"].items()))]
                for value, entry in breakdown["values"].items()]
        parts.append(f"<h2>By {escape(name)}</h2>"
                     + _table([name, "items", "alpha", "results"], rows))
        if breakdown.get("other_values_items"):
            parts.append(f"<p>{breakdown['other_values_items']} items have other values.</p>")
    return "".join(parts)


def render(report: Mapping[str, Any]) -> str:
    """The report as an HTML page."""
    agreement = report.get("agreement") or {}
    gold = report.get("gold") or {}
    na = report.get("not_applicable") or {}
    summary = [
        ("items (answered)", f"{report['items']} ({report['answered_items']})"),
        ("answers / workers", f"{report['answers']} / {report['workers']}"),
        ("method", ", ".join(f"{m} ({n})" for m, n in (report.get("methods") or {}).items()) or "—"),
        ("Krippendorff's alpha", _number(agreement.get("krippendorff_alpha"))),
        ("Fleiss' kappa", _number(agreement.get("fleiss_kappa"))),
        ("mean confidence", _number(report.get("mean_confidence"))),
        ("median seconds per task", _number(report.get("median_seconds_per_task"), 1)),
        ("not applicable", f"{na.get('rate', 0):.1%}"),
        ("gold accuracy", f"{_number(gold.get('accuracy'))} on {gold.get('answers', 0)} answers"),
    ]
    summary_table = "<table>" + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summary) + "</table>"
    lowest = _table(["item", "external id", "answer", "confidence", "answers"], [
        [_cell(e["item_id"]), _cell(e.get("external_id") or ""), _cell(_answer_text(e["answer"])),
         _cell(e["confidence"], True), _cell(e["n_answers"], True)]
        for e in report.get("lowest_confidence") or []])
    reasons = _table(["reason", "count"], [[_cell(r["reason"]), _cell(r["count"], True)]
                                           for r in na.get("reasons") or []])
    title = f"Quality report: {report['job_id']}, round {report['round']} ({report['task_type']})"
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{summary_table}{_distributions(report)}{_workers(report)}"
            f"<h2>Least certain items</h2>{lowest}<h2>Not applicable: reasons</h2>{reasons}"
            f"{_attributes(report)}</body></html>")


def _answer_text(answer: Mapping[str, Any] | None) -> str:
    if answer is None:
        return "not applicable"
    return str(next(iter(answer.values()), ""))
