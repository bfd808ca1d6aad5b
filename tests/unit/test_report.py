"""The round's quality report (chalicelib.domain.report), from hand-made result lines."""
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
    assert page.count("<svg") == 2 and page.count("<rect") == (3 + 3 + 1) + 3 * 3
    for text in ("round 2", "Distance of the results", "By source", "&lt;app&gt;",
                 "Least certain items", "not english", "gold accuracy"):
        assert text in page, text
