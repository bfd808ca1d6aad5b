"""The round's quality report (chalicelib.domain.report), from hand-made result lines."""
import re

import pytest

from chalicelib.domain import quality
from chalicelib.domain.report import build_report


def _line(item, answer, confidence, answers, reasons=(), method="DawidSkene"):
    """A result line as Publish reads it: answers are (worker, answer, leased, submitted)."""
    return {"item_id": item, "external_id": f"ext-{item}", "answer": answer,
            "confidence": confidence, "n_answers": len(answers),
            "not_applicable": answer is None and bool(answers), "na_reasons": list(reasons),
            "method": method if answers else None,
            "answers": [{"worker_id": w, "answer": a, "leased_at": f"2026-11-28T10:00:{l:02d}Z",
                         "submitted_at": f"2026-11-28T10:00:{s:02d}Z"} for w, a, l, s in answers]}


POS, NEG = {"label": "pos"}, {"label": "neg"}
LINES = [
    _line("1", POS, 0.99, [("a", POS, 0, 10), ("b", POS, 0, 20), ("c", POS, 0, 30)]),
    _line("2", NEG, 0.70, [("a", NEG, 0, 12), ("b", POS, 0, 14), ("c", NEG, 0, 16)]),
    _line("3", None, 0.67, [("a", {"not_applicable": "Not English"}, 0, 5),
                            ("b", {"not_applicable": "not  english"}, 0, 5),
                            ("c", POS, 0, 5)], reasons=("Not English", "not  english")),
    _line("4", None, 0.0, []),
]


def test_a_label_report_has_agreement_shares_na_reasons_times_and_workers():
    # WHEN the report of a 4-item round is built, with the model's worker skills
    report = build_report("job_x", 1, "categorical", LINES, {"a": 0.95, "b": 0.6, "c": 0.8})
    # THEN it counts items, answers and workers
    assert (report["items"], report["answered_items"], report["answers"], report["workers"]) \
        == (4, 3, 9, 3)
    assert report["methods"] == {"DawidSkene": 3}
    # AND agreement is computed over the answers, N/A left out
    units = {"1": ["pos"] * 3, "2": ["neg", "pos", "neg"], "3": [None, None, "pos"], "4": []}
    assert report["agreement"]["krippendorff_alpha"] == round(quality.krippendorff_alpha_nominal(units), 4)
    assert report["agreement"]["fleiss_kappa"] is None  # items hold 3, 3 and 1 labels
    # AND the shares of results and of answers are given
    assert report["result_distribution"] == {"pos": 0.3333, "neg": 0.3333, "not_applicable": 0.3333}
    assert report["answer_distribution"] == {"pos": 0.7143, "neg": 0.2857}
    # AND N/A reasons typed differently are grouped, with the N/A rate over all answers
    assert report["not_applicable"] == {"rate": 2 / 9,
                                        "reasons": [{"reason": "not english", "count": 2}]}
    # AND the median task took 12 s (5, 5, 5, 10, 12, 14, 16, 20, 30)
    assert report["median_seconds_per_task"] == 12
    # AND the least certain answered items come first
    assert [entry["item_id"] for entry in report["lowest_confidence"]] == ["3", "2", "1"]
    # AND each worker's answers, agreement with the results (a matched all three, N/A included;
    # b missed item 2, c item 3) and estimated accuracy
    assert report["worker_summary"] == [
        {"worker_id": "a", "answers": 3, "agreement_with_results": 1.0, "too_fast": 0,
         "estimated_accuracy": 0.95},
        {"worker_id": "b", "answers": 3, "agreement_with_results": 0.6667, "too_fast": 0,
         "estimated_accuracy": 0.6},
        {"worker_id": "c", "answers": 3, "agreement_with_results": 0.6667, "too_fast": 0,
         "estimated_accuracy": 0.8},
    ]


def test_a_text_report_leaves_out_label_statistics():
    line = _line("1", {"text": "hola"}, 0.9, [("a", {"text": "hola"}, 0, 3), ("b", {"text": "hola."}, 0, 4)],
                 method="medoid")
    report = build_report("job_t", 1, "translation", [line])
    assert report["agreement"] == {"krippendorff_alpha": None, "fleiss_kappa": None}
    assert report["result_distribution"] == {} and report["answer_distribution"] == {}
    assert report["mean_confidence"] == 0.9 and report["median_seconds_per_task"] == 3.5
    assert "estimated_accuracy" not in report["worker_summary"][0]


def test_an_empty_round_reports_nothing_rather_than_failing():
    report = build_report("job_e", 1, "categorical", [_line("1", None, 0.0, [])])
    assert report["answers"] == 0 and report["agreement"]["krippendorff_alpha"] is None
    assert report["not_applicable"]["rate"] == 0 and report["lowest_confidence"] == []
    assert report["median_seconds_per_task"] is None and report["mean_confidence"] is None


def test_the_report_measures_distance_from_the_expected_shares_and_breaks_down_by_attribute():
    # GIVEN the round above, its items tagged with a source, and an expected 50/50 split
    sources = {"1": "web", "2": "web", "3": "app", "4": "app"}
    lines = [{**line, "attributes": {"source": sources[line["item_id"]]}} for line in LINES]
    settings = {"expected_distribution": {"pos": 0.5, "neg": 0.5}, "attributes": ["source"]}
    # WHEN the report is built
    report = build_report("job_x", 1, "categorical", lines, None, settings)
    # THEN the distance is the total variation between results (1/3 each, N/A included) and 50/50
    assert report["distance_from_expected"] == round(0.5 * (1 / 6 + 1 / 6 + 1 / 3), 4)
    # AND each source shows its own agreement and result shares
    web, app = (report["by_attribute"]["source"]["values"][v] for v in ("web", "app"))
    assert web["items"] == 2 and web["result_distribution"] == {"pos": 0.5, "neg": 0.5}
    assert web["krippendorff_alpha"] == round(quality.krippendorff_alpha_nominal(
        {"1": ["pos"] * 3, "2": ["neg", "pos", "neg"]}), 4)
    assert app["items"] == 2 and app["result_distribution"] == {"not_applicable": 1.0}
    assert report["by_attribute"]["source"]["other_values_items"] == 0


def test_gold_items_give_each_worker_a_smoothed_gold_accuracy():
    # GIVEN items 1 and 2 are gold (pos and neg): a got both right, b one, c both
    lines = [{**LINES[0], "gold": POS}, {**LINES[1], "gold": NEG}, LINES[2], LINES[3]]
    # WHEN the report is built
    report = build_report("job_g", 1, "categorical", lines)
    # THEN the crowd's raw gold accuracy is 5 of 6, and each worker's is Beta(1,1)-smoothed
    assert report["gold"] == {"items": 2, "answers": 6, "accuracy": round(5 / 6, 4)}
    by_worker = {w["worker_id"]: w for w in report["worker_summary"]}
    assert (by_worker["a"]["gold_correct"], by_worker["a"]["gold_accuracy"]) == (2, 0.75)
    assert (by_worker["b"]["gold_correct"], by_worker["b"]["gold_accuracy"]) == (1, 0.5)
    # AND a round without gold says so
    assert build_report("job_n", 1, "categorical", LINES)["gold"] == \
        {"items": 0, "answers": 0, "accuracy": None}


def test_gold_is_judged_by_the_jobs_rule_when_one_is_given():
    # GIVEN a transcription gold item answered with a near-exact and a wrong text
    gold = {"text": "the quick brown fox"}
    line = {**_line("1", gold, 0.9, [("a", {"text": "The quick  brown fox."}, 0, 5),
                                      ("b", {"text": "a slow dog"}, 0, 5)]), "gold": gold}
    # THEN equality counts neither, and a tolerant rule counts the near-exact one
    assert build_report("job_t", 1, "transcription", [line])["gold"]["answers"] == 2
    assert build_report("job_t", 1, "transcription", [line])["gold"]["accuracy"] == 0.0

    def judge(answer, known):
        return answer["text"].casefold().strip(".").split() == known["text"].split()

    assert build_report("job_t", 1, "transcription", [line], judge=judge)["gold"]["accuracy"] == 0.5


def test_the_html_page_shows_every_section_of_a_full_report():
    from chalicelib.api.report_page import render

    lines = [{**LINES[0], "gold": POS, "attributes": {"source": "web"}},
             {**LINES[1], "attributes": {"source": "<app>"}}, LINES[2], LINES[3]]
    report = build_report("job_h", 2, "categorical", lines, {"a": 0.9, "b": 0.5, "c": 0.7},
                          {"expected_distribution": {"pos": 0.5, "neg": 0.5}, "attributes": ["source"]})
    page = render(report)
    # the label chart: pos and neg have results, answers and expected bars, N/A a result bar
    # only; the worker chart: agreement, model estimate and gold for each of three workers
    assert page.count("<svg") == 2 and page.count('fill="#') == (3 + 3 + 1) + 3 * 3
    for text in ("round 2", "Distance of the results", "By source", "&lt;app&gt;",
                 "Least certain items", "not english", "gold accuracy"):
        assert text in page, text


def test_a_worker_without_gold_answers_has_no_gold_accuracy_rather_than_the_priors():
    # GIVEN item 1 is gold, and worker d answered only item 5, which is not
    lines = [{**LINES[0], "gold": POS}, *LINES[1:],
             _line("5", NEG, 0.9, [("d", NEG, 0, 3)])]
    # WHEN the report is built
    by_worker = {w["worker_id"]: w for w in build_report("job_g", 1, "categorical",
                                                         lines)["worker_summary"]}
    # THEN d's gold accuracy is null, not the Beta(1, 1) prior's 0.5 ("1 of 2 right")
    assert (by_worker["d"]["gold_answers"], by_worker["d"]["gold_accuracy"]) == (0, None)
    assert by_worker["a"]["gold_accuracy"] == round(2 / 3, 4)


# --- the HTML page -------------------------------------------------------------------------

CHAR_PX = 0.62 * 12  # a generous advance per character of 12 px sans-serif text


def _page(phase="production", round_no=1, lines=None, skills=None):
    from chalicelib.api.report_page import render

    report = build_report("job_p", round_no, "categorical", lines or LINES, skills)
    return render({**report, "phase": phase})


def _charts(page):
    """Each SVG chart of the page as an XML element."""
    import xml.etree.ElementTree as ET

    return [ET.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", page, re.S)]


def test_charts_scale_to_the_screen_and_every_figure_stays_inside_the_view_box():
    # GIVEN workers with long ids, a long label, gold answers and model estimates
    long_id = "wrk_" + "f" * 40
    lines = [{**_line("1", {"label": "a very long label name indeed"}, 0.9,
                      [(long_id, {"label": "a very long label name indeed"}, 0, 5),
                       ("b", {"label": "a very long label name indeed"}, 0, 6)]),
              "gold": {"label": "a very long label name indeed"}},
             _line("2", NEG, 0.7, [(long_id, NEG, 0, 5), ("c", POS, 0, 6)])]
    page = _page(lines=lines, skills={long_id: 0.91, "b": 0.6})
    charts = _charts(page)
    assert len(charts) == 2
    for chart in charts:
        # THEN each chart has a viewBox and takes the width it is given
        assert chart.get("width") == "100%"
        _, _, width, _ = map(float, chart.get("viewBox").split())
        texts = chart.findall("{http://www.w3.org/2000/svg}text")
        assert texts
        for text in texts:
            shown = "".join(text.itertext()) if text.get("clip-path") is None else ""
            # AND every figure beside the bars ends inside it (row labels are clipped)
            assert float(text.get("x")) + len(shown) * CHAR_PX <= width, shown
    # AND the page has a mobile viewport, and every table scrolls inside its own box
    assert 'name="viewport" content="width=device-width' in page
    assert page.count("<table") == page.count('<div class="scroll"><table')


def test_each_figure_names_its_series_and_a_missing_gold_figure_says_so():
    # GIVEN item 1 is gold; worker d met no gold item and has no model estimate
    lines = [{**LINES[0], "gold": POS}, *LINES[1:], _line("5", NEG, 0.9, [("d", NEG, 0, 3)])]
    page = _page(lines=lines, skills={"a": 0.9, "b": 0.6, "c": 0.8})
    workers = "".join(_charts(page)[1].itertext())
    # THEN each figure is written with its series, and the legend names the short forms
    for text in ("agree 1.00", "est 0.90", "gold 0.67", "est —", "no gold answers yet"):
        assert text in workers, text
    assert "estimated accuracy (est)" in page and "gold accuracy (gold)" in page
    # AND the worker table says d has no gold answers yet instead of a number
    assert "0.67 (1 of 1)" in page
    row_d = next(row for row in page.split("<tr>") if row.startswith('<td class="id">d</td>'))
    assert "<td>no gold answers yet</td>" in row_d and "0.5" not in row_d


def test_the_title_says_whether_the_report_is_the_pilots_or_productions():
    assert "<h1>Calibration report (pilot, round 1): job_p" in _page(phase="pilot")
    assert "<title>Production report (round 2): job_p" in _page(phase="production", round_no=2)


def test_the_na_reasons_table_is_left_out_when_no_answer_was_not_applicable():
    assert "Not applicable: reasons" in _page()  # LINES has two N/A answers
    page = _page(lines=[LINES[0], LINES[1]])
    assert "Not applicable: reasons" not in page and "<td>reason" not in page


def test_too_fast_answers_are_shown_per_worker():
    # GIVEN worker b answered items 1 and 2 too fast
    lines = [{**line, "answers": [{**entry, "flags": ["too_fast"]} if entry["worker_id"] == "b"
                                  and line["item_id"] in ("1", "2") else entry
                                  for entry in line["answers"]]} for line in LINES]
    page = _page(lines=lines)
    # THEN the summary counts them, and the worker table has a too-fast column: a 0, b 2, c 0
    assert "<tr><th>too-fast answers</th><td>2</td></tr>" in page
    assert "<th>too fast</th>" in page
    table = page.split("<th>too fast</th>")[1].split("</table>")[0]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in table.split("<tr>")[1:]]
    assert [(row[0], row[-1]) for row in cells] == [("b", "2"), ("c", "0"), ("a", "0")]


def test_a_gold_item_nobody_answered_counts_as_an_item_and_in_no_figure_of_the_answers():
    # GIVEN two items with 3 answers each, and a gold item nobody answered (its known answer)
    answered = [{**LINES[0], "attributes": {"source": "web"}},
                {**LINES[1], "attributes": {"source": "web"}}]
    unanswered_gold = {**_line("9", POS, 1.0, [], method="gold"), "method": "gold", "gold": POS,
                       "probabilities": {"pos": 1.0, "neg": 0.0}, "attributes": {"source": "web"}}
    settings = {"attributes": ["source"]}
    without = build_report("job_x", 1, "categorical", answered, None, settings)
    # WHEN the report also reads the gold item's line
    report = build_report("job_x", 1, "categorical", answered + [unanswered_gold], None, settings)
    # THEN it is one more item, made by the gold method, one more gold item
    assert (report["items"], report["methods"], report["gold"]["items"]) == (
        3, {"DawidSkene": 2, "gold": 1}, 1)
    assert report["by_attribute"]["source"]["values"]["web"]["items"] == 3
    # AND it is no answered item: agreement (Fleiss' kappa over equal units included), result
    # shares, mean and lowest confidence, N/A and gold accuracy are those of the answers alone
    assert report["agreement"]["fleiss_kappa"] is not None
    for figure in ("answered_items", "answers", "agreement", "result_distribution",
                   "answer_distribution", "not_applicable", "mean_confidence",
                   "lowest_confidence"):
        assert report[figure] == without[figure], figure
    assert [(w["worker_id"], w["answers"], w["agreement_with_results"], w["gold_answers"])
            for w in report["worker_summary"]] == [
        (w["worker_id"], w["answers"], w["agreement_with_results"], 0)
        for w in without["worker_summary"]]
    assert report["gold"]["answers"] == 0 and report["gold"]["accuracy"] is None
    assert report["by_attribute"]["source"]["values"]["web"]["krippendorff_alpha"] == \
        without["by_attribute"]["source"]["values"]["web"]["krippendorff_alpha"]
