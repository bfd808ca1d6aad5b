"""The HTML quality report in a real browser (Debian's headless Chromium driven by Playwright),
rendered from a report made here: no stack is started. On a phone-width screen the page must
not scroll sideways."""

from chalicelib.api.report_page import render
from chalicelib.domain.report import build_report

PHONE = {"width": 390, "height": 844}


def _report():
    """A round with long worker ids, long labels and external ids, gold, N/A reasons and
    attributes: everything that could make the page wider than a phone."""
    labels = ["positive", "negative", "mixed-feelings-about-the-product-overall"]
    lines = []
    for n in range(12):
        label = {"label": labels[n % 3]}
        answers = [{"worker_id": f"wrk_{w:04d}{'0123456789abcdef' * 2}", "answer": label,
                    "leased_at": "2026-11-28T10:00:00Z", "submitted_at": "2026-11-28T10:00:04Z",
                    **({"flags": ["too_fast"]} if w == 1 else {})} for w in range(3)]
        if n == 0:
            answers[2]["answer"] = {"not_applicable": "the review is in another language"}
        lines.append({"item_id": f"{n:06d}", "external_id": f"review-{'x' * 60}-{n}",
                      "answer": label, "confidence": 0.5 + n / 30, "n_answers": 3,
                      "not_applicable": False, "method": "DawidSkene",
                      "na_reasons": ["the review is in another language"] if n == 0 else [],
                      "answers": answers, "attributes": {"source": f"source-{'y' * 50}"},
                      **({"gold": label} if n < 2 else {})})
    skills = {f"wrk_{w:04d}{'0123456789abcdef' * 2}": 0.8 for w in range(3)}
    report = build_report("job_3fc5b7489853092f", 1, "categorical", lines, skills,
                          {"expected_distribution": {label: 1 / 3 for label in labels},
                           "attributes": ["source"]})
    return {**report, "phase": "pilot"}


def test_the_report_fits_a_phone_screen_without_sideways_scrolling(browser):
    page = browser.new_page(viewport=PHONE)
    page.set_content(render(_report()))
    assert page.title().startswith("Calibration report (pilot, round 1)")
    assert page.locator("svg").count() == 2
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], width
    # the charts were scaled down to the screen, not cut off
    for box in (page.locator("svg").nth(n).bounding_box() for n in range(2)):
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.close()
