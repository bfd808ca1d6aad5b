"""The quality report as one self-contained HTML page with SVG bar charts (no scripts).

Everything that comes from clients or workers (labels, ids, reasons, attribute values) is
escaped, so a label cannot inject markup into the page. The page fits a phone's width: charts
scale to the width they are given (a viewBox with room for every figure beside the bars) and
wide tables scroll inside their own box.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

FONT_SIZE = 12
# A generous advance per character at FONT_SIZE (digits and lowercase in a sans-serif are
# narrower), so the room kept for a figure's text is never too small.
CHAR_WIDTH = 0.62 * FONT_SIZE
LABEL_WIDTH = 150
LABEL_CHARS = 18
BAR_WIDTH = 200
BAR_HEIGHT = 11
BAR_PITCH = 15
ROW_GAP = 8
GAP = 6
NO_GOLD = "no gold answers yet"

STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem;color:#1d1d1f}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}h1,h2,p{overflow-wrap:anywhere}
figure{margin:1rem 0}svg{display:block;height:auto}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}
th,td.n{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
td{overflow-wrap:break-word}td.id{overflow-wrap:anywhere;min-width:7rem}
svg text{font-size:12px;fill:#1d1d1f}.legend span{display:inline-block;margin-right:1rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""
COLOURS = ("#2f6fdf", "#f0a030", "#6a9f4a")


@dataclass(frozen=True)
class Series:
    """One bar per row: its legend name, the short name written beside each of its figures,
    and what is written where a row has no value."""

    name: str
    short: str
    missing: str | None = None

    def figure(self, value: float | None) -> str:
        """The text beside a bar: "est 0.82"; "est —" (or the note) when the value is missing."""
        if value is None:
            return self.missing or f"{self.short} —"
        return f"{self.short} {value:.2f}"


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def _short_label(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def bar_chart(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[Series],
              title: str, chart_id: str) -> str:
    """Horizontal bars in [0, 1]: one row per label, one bar per series, each figure written
    beside its bar with its series' short name ("—" or the series' note when missing).

    The SVG has a viewBox and width 100%, so it scales down on a narrow screen; the viewBox
    is wide enough for the longest figure, and row labels are shortened and clipped to their
    column, so no text runs past the chart's edge."""
    row_height = len(series) * BAR_PITCH + ROW_GAP
    height = max(len(rows), 1) * row_height
    figures_at = LABEL_WIDTH + BAR_WIDTH + GAP
    texts = [s.figure(value) for _, values in rows for s, value in zip(series, values)]
    width = round(figures_at + max((_text_width(t) for t in texts), default=0) + GAP)
    clip = f"{chart_id}-labels"
    parts = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="100%" style="max-width:{width}px" preserveAspectRatio="xMinYMin meet" '
             f'xmlns="http://www.w3.org/2000/svg">'
             f'<defs><clipPath id="{clip}"><rect x="0" y="0" width="{LABEL_WIDTH - GAP}" '
             f'height="{height}"/></clipPath></defs>']
    for index, (label, values) in enumerate(rows):
        top = index * row_height
        parts.append(f'<text x="0" y="{top + BAR_HEIGHT}" clip-path="url(#{clip})">'
                     f'<title>{escape(label)}</title>{escape(_short_label(label))}</text>')
        for number, (kind, value) in enumerate(zip(series, values)):
            y = top + number * BAR_PITCH
            if value is not None:
                bar = round(max(0.0, min(1.0, value)) * BAR_WIDTH, 1)
                parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar}" '
                             f'height="{BAR_HEIGHT}" fill="{COLOURS[number % len(COLOURS)]}">'
                             f'<title>{escape(kind.name)}: {value:.3f}</title></rect>')
            parts.append(f'<text x="{figures_at}" y="{y + BAR_HEIGHT - 1}">'
                         f'{escape(kind.figure(value))}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><span class="swatch" style="background:{COLOURS[n % len(COLOURS)]}">'
                     f'</span>{escape(s.name)} ({escape(s.short)})</span>'
                     for n, s in enumerate(series))
    return (f'<figure><figcaption>{escape(title)}</figcaption><div class="legend">{legend}</div>'
            f'{"".join(parts)}</figure>')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cell(value: Any, numeric: bool = False) -> str:
    return f'<td class="n">{_number(value)}</td>' if numeric else f"<td>{escape(str(value))}</td>"


def _id_cell(value: Any) -> str:
    """An id or other long unbroken text: it wraps anywhere rather than widen the table."""
    return f'<td class="id">{escape(str(value))}</td>'


def _distributions(report: Mapping[str, Any]) -> str:
    results = report.get("result_distribution") or {}
    answers = report.get("answer_distribution") or {}
    expected = report.get("expected_distribution") or {}
    labels = list(dict.fromkeys([*results, *answers, *expected]))
    if not labels:
        return ""
    series = [Series("results", "results"), Series("answers", "answers")] \
        + ([Series("expected", "expected")] if expected else [])
    rows = [(label, [results.get(label), answers.get(label)]
             + ([expected.get(label)] if expected else [])) for label in labels]
    distance = report.get("distance_from_expected")
    note = (f"<p>Distance of the results from the expected shares (total variation): "
            f"{_number(distance)}</p>" if distance is not None else "")
    return "<h2>Labels</h2>" + bar_chart(rows, series, "Share of each label", "labels") + note


def _gold_text(worker: Mapping[str, Any]) -> str:
    """A worker's gold record: "0.75 (2 of 2)", or that they have met no gold item yet."""
    if not worker.get("gold_answers"):
        return NO_GOLD
    return (f"{worker['gold_accuracy']:.2f} "
            f"({worker['gold_correct']} of {worker['gold_answers']})")


def _workers(report: Mapping[str, Any]) -> str:
    workers = report.get("worker_summary") or []
    if not workers:
        return ""
    has_gold = any("gold_answers" in w for w in workers)
    has_model = any("estimated_accuracy" in w for w in workers)
    series = [Series("agreement with results", "agree")] \
        + ([Series("estimated accuracy", "est")] if has_model else []) \
        + ([Series("gold accuracy", "gold", NO_GOLD)] if has_gold else [])
    ordered = sorted(workers, key=lambda w: w["agreement_with_results"])
    rows = [(w["worker_id"], [w["agreement_with_results"]]
             + ([w.get("estimated_accuracy")] if has_model else [])
             + ([w.get("gold_accuracy") if w.get("gold_answers") else None] if has_gold else []))
            for w in ordered]
    header = ["worker", "answers", "agreement"] + (["estimated"] if has_model else []) \
        + (["gold"] if has_gold else []) + ["too fast"]
    table = _table(header, [
        [_id_cell(w["worker_id"]), _cell(w["answers"], True), _cell(w["agreement_with_results"], True)]
        + ([_cell(w.get("estimated_accuracy"), True)] if has_model else [])
        + ([_cell(_gold_text(w))] if has_gold else [])
        + [_cell(w.get("too_fast", 0), True)]
        for w in ordered])
    return ("<h2>Workers</h2>" + bar_chart(rows, series, "Per worker, lowest agreement first",
                                           "workers") + table)


def _attributes(report: Mapping[str, Any]) -> str:
    parts = []
    for name, breakdown in (report.get("by_attribute") or {}).items():
        rows = [[_id_cell(value), _cell(entry["items"], True), _cell(entry["krippendorff_alpha"], True),
                 _cell(", ".join(f"{label} {share:.2f}" for label, share
                                 in entry["result_distribution"].items()))]
                for value, entry in breakdown["values"].items()]
        parts.append(f"<h2>By {escape(name)}</h2>"
                     + _table([name, "items", "alpha", "results"], rows))
        if breakdown.get("other_values_items"):
            parts.append(f"<p>{breakdown['other_values_items']} items have other values.</p>")
    return "".join(parts)


def title(report: Mapping[str, Any]) -> str:
    """Which report this is: the pilot's calibration report or a production round's."""
    phase = report.get("phase")
    if phase == "pilot":
        heading = f"Calibration report (pilot, round {report['round']})"
    elif phase == "production":
        heading = f"Production report (round {report['round']})"
    else:
        heading = f"Quality report (round {report['round']})"
    return f"{heading}: {report['job_id']} ({report['task_type']})"


def _summary(report: Mapping[str, Any]) -> str:
    agreement = report.get("agreement") or {}
    gold = report.get("gold") or {}
    na = report.get("not_applicable") or {}
    gold_text = (f"{_number(gold.get('accuracy'))} on {gold['answers']} answers"
                 if gold.get("answers") else "no gold answers")
    rows = [
        ("items (answered)", f"{report['items']} ({report['answered_items']})"),
        ("answers / workers", f"{report['answers']} / {report['workers']}"),
        ("method", ", ".join(f"{m} ({n})" for m, n in (report.get("methods") or {}).items()) or "—"),
        ("Krippendorff's alpha", _number(agreement.get("krippendorff_alpha"))),
        ("Fleiss' kappa", _number(agreement.get("fleiss_kappa"))),
        ("mean confidence", _number(report.get("mean_confidence"))),
        ("median seconds per task", _number(report.get("median_seconds_per_task"), 1)),
        ("too-fast answers", str(report.get("too_fast_answers", 0))),
        ("not applicable", f"{na.get('rate', 0):.1%}"),
        ("gold accuracy", gold_text),
    ]
    return '<div class="scroll"><table>' + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table></div>"


def _lowest(report: Mapping[str, Any]) -> str:
    entries = report.get("lowest_confidence") or []
    if not entries:
        return ""
    return "<h2>Least certain items</h2>" + _table(
        ["item", "external id", "answer", "confidence", "answers"],
        [[_id_cell(e["item_id"]), _id_cell(e.get("external_id") or ""),
          _cell(_answer_text(e["answer"])),
          _cell(e["confidence"], True), _cell(e["n_answers"], True)] for e in entries])


def _calibration(report: Mapping[str, Any]) -> str:
    """The calibration map, its ECE before and after on the gold items, whether the model was
    fitted with the gold clamped, and the reliability diagram before and after as a table
    (one row per confidence bin)."""
    section = report.get("calibration")
    if not section:
        return ""
    before, after = section["before"], section["after"]
    note = (f"<p>{escape(section['kind'])}: {escape(section['reason'])}. "
            f"ECE on {section['gold_items']} gold items: {_number(before['ece'])} before, "
            f"{_number(after['ece'])} after.</p>")
    if section.get("clamp_reason"):
        note += f"<p>Model: {escape(section['clamp_reason'])}.</p>"
    rows = [[_cell(f"{b['lower']:.1f}–{b['upper']:.1f}"),
             _cell(b["count"], True), _cell(b["confidence"], True), _cell(b["accuracy"], True),
             _cell(a["count"], True), _cell(a["confidence"], True), _cell(a["accuracy"], True)]
            for b, a in zip(before["reliability"], after["reliability"])]
    return "<h2>Calibration</h2>" + note + _table(
        ["confidence", "items before", "predicted before", "observed before",
         "items after", "predicted after", "observed after"], rows)


def _na_reasons(report: Mapping[str, Any]) -> str:
    reasons = (report.get("not_applicable") or {}).get("reasons") or []
    if not reasons:
        return ""
    return "<h2>Not applicable: reasons</h2>" + _table(
        ["reason", "count"], [[_cell(r["reason"]), _cell(r["count"], True)] for r in reasons])


def render(report: Mapping[str, Any]) -> str:
    """The report as an HTML page."""
    heading = title(report)
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(heading)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(heading)}</h1>{_summary(report)}{_distributions(report)}"
            f"{_workers(report)}{_calibration(report)}{_lowest(report)}{_na_reasons(report)}"
            f"{_attributes(report)}</body></html>")


def _answer_text(answer: Mapping[str, Any] | None) -> str:
    if answer is None:
        return "not applicable"
    return str(next(iter(answer.values()), ""))
