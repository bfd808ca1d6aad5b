"""QuestionFormAnswers XML as MTurk stored a study page's posted fields, the fields read from
form and multipart bodies, and the worker side's URLs: the parameters appended to a HIT's
question URL, and the AWS URLs rewritten in HTML we host."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.api.mturk_worker import posted_fields
from chalicelib.domain.model import Job
from chalicelib.domain.mturk_worker import (
    frame_height, frame_url, hosted_html, leased, preview, question_kind, with_parameters,
)
from chalicelib.domain.question_answers import NAMESPACE, question_form_answers
from chalicelib.errors import InvalidRequest, UnsupportedMediaType

EMPTY = ('<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://mechanical'
         'turk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd">'
         '</QuestionFormAnswers>')


def _answers(xml: str) -> list[tuple[str, str]]:
    root = ET.fromstring(xml.encode("ascii"))
    ns = {"q": NAMESPACE}
    return [(a.findtext("q:QuestionIdentifier", namespaces=ns),
             a.findtext("q:FreeText", default=None, namespaces=ns))
            for a in root.findall("q:Answer", ns)]


def test_the_answers_are_the_posted_fields_in_order_as_mturk_wrote_them():
    xml = question_form_answers([("q2", "b"), ("q1", "a")])
    assert xml == EMPTY.replace(
        "</QuestionFormAnswers>",
        "<Answer><QuestionIdentifier>q2</QuestionIdentifier><FreeText>b</FreeText></Answer>"
        "<Answer><QuestionIdentifier>q1</QuestionIdentifier><FreeText>a</FreeText></Answer>"
        "</QuestionFormAnswers>")


def test_the_reserved_fields_are_left_out_and_none_left_is_an_empty_document():
    fields = [("assignmentId", "X"), ("hitId", "H"), ("turkSubmitTo", "u"), ("workerId", "W")]
    assert question_form_answers(fields) == EMPTY
    assert question_form_answers([]) == EMPTY
    assert _answers(question_form_answers(fields + [("hitid", "kept")])) == [("hitid", "kept")]


def test_non_ascii_is_written_as_character_references_and_markup_is_escaped():
    xml = question_form_answers([("café", "naïve <b>&\"'</b> 😀 שלום")])
    assert xml.isascii()
    assert "caf&#233;" in xml and "&#128512;" in xml and "&lt;b&gt;&amp;" in xml
    assert _answers(xml) == [("café", "naïve <b>&\"'</b> 😀 שלום")]


def test_repeated_names_and_empty_values_each_make_an_answer():
    xml = question_form_answers([("pick", "a"), ("pick", "b"), ("comment", "")])
    assert _answers(xml) == [("pick", "a"), ("pick", "b"), ("comment", "")]
    assert "<FreeText></FreeText>" in xml


def test_characters_xml_cannot_hold_are_dropped_so_the_document_parses():
    xml = question_form_answers([("q", "a\x00b\x1fc\ud800d\tx\ny")])
    assert _answers(xml) == [("q", "abcd\tx\ny")]


def _job(mturk: dict | None = None) -> Job:
    return Job(job_id="job_00112233445566aa", client_id="cl", quote_id="q", title="t",
               task_type="collection", instructions="i", answer_schema={}, not_applicable="n",
               redundancy=1, reward_cents=5, budget_cents=5, item_count=1, chunk_count=1,
               lease_seconds=60, deadline=0.0, created_at=0.0,
               mturk={"question": "external", "frame_height": 600} if mturk is None else mturk)


BASE = "https://abc.execute-api.us-east-1.amazonaws.com/api"


def test_parameters_are_appended_cgi_style_keeping_the_url_s_own():
    assert with_parameters("https://lab.example/ad?mode=live", {"a": "1", "b": "x y"}) == \
        "https://lab.example/ad?mode=live&a=1&b=x+y"
    assert with_parameters("https://lab.example/ad", {"a": "1"}) == "https://lab.example/ad?a=1"
    assert with_parameters("https://lab.example/ad?", {"a": "1"}) == "https://lab.example/ad?a=1"
    assert with_parameters("https://lab.example/ad?x=1#top", {"a": "1"}) == \
        "https://lab.example/ad?x=1&a=1#top"


def test_preview_frames_the_external_url_without_an_assignment_or_worker():
    data = {"external_url": "https://lab.example/ad?recruiter=mturk", "frame_height": 600}
    url = frame_url(_job(), data, BASE)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://lab.example/ad?recruiter=mturk&assignmentId=")
    assert query == {"recruiter": ["mturk"], "assignmentId": ["ASSIGNMENT_ID_NOT_AVAILABLE"],
                     "hitId": ["00112233445566AA"], "turkSubmitTo": [BASE]}
    assert "turkSubmitTo=https%3A%2F%2Fabc.execute-api" in url
    view = preview(_job(), data, BASE)
    assert view["question"] == "external" and view["frame_height"] == 600
    assert view["external_url"] == data["external_url"] and view["html"] is False


def test_an_accepted_hit_frames_the_real_assignment_and_worker():
    asg = "asg_00112233445566aa_000000_0a1b2c3d_1700000000000_v1"
    view = leased(_job(), {"external_url": "https://lab.example/s"}, asg,
                  "wrk_0123456789abcdef", BASE)
    query = parse_qs(urlsplit(view["frame_url"]).query)
    assert view["assignment_id"] == "00112233445566AA000000Z0A1B2C3D1700000000000V1"
    assert view["worker_id"] == "A0123456789ABCDEF"
    assert query["assignmentId"] == [view["assignment_id"]]
    assert query["workerId"] == ["A0123456789ABCDEF"]
    assert query["hitId"] == ["00112233445566AA"] and query["turkSubmitTo"] == [BASE]
    assert view["turk_submit_to"] == BASE


def test_an_html_question_is_framed_at_our_host_and_a_form_is_not_framed():
    html_job = _job({"question": "html", "frame_height": 0})
    url = frame_url(html_job, {"html": "<p>x</p>"}, BASE)
    assert url.startswith(BASE + "/mturk/html/00112233445566AA?assignmentId=ASSIGNMENT_ID")
    assert frame_height(html_job, {"html": "x"}) == 0
    assert frame_url(_job({"question": "form"}), {"question": "<QuestionForm/>"}, BASE) is None
    assert question_kind(_job({}), {"html": "x"}) == "html"


def test_hosted_html_loads_our_script_and_posts_here_instead_of_to_aws():
    content = ("<script src='https://s3.amazonaws.com/mturk-public/externalHIT_v1.js'></script>"
               "<script src=\"//s3.amazonaws.com/mturk-public/externalHIT_v1.js\"></script>"
               "<form action='https://www.mturk.com/mturk/externalSubmit'></form>"
               "<form action='https://workersandbox.mturk.com/mturk/externalSubmit'></form>")
    hosted = hosted_html(content, BASE)
    assert "s3.amazonaws.com" not in hosted and "mturk.com" not in hosted
    assert hosted.count(BASE + "/mturk/externalHIT_v1.js") == 2
    assert hosted.count(BASE + "/mturk/externalSubmit") == 2


def test_posted_fields_are_read_from_urlencoded_and_multipart_bodies_in_order():
    assert posted_fields("application/x-www-form-urlencoded; charset=UTF-8",
                         b"b=2&a=x+y%26z&a=&caf%C3%A9=%F0%9F%98%80") == [
        ("b", "2"), ("a", "x y&z"), ("a", ""), ("café", "😀")]
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nfirst\r\nline\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"réponse\"\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nоднако\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n"
            "--XyZ\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--XyZ--\r\n")
    assert posted_fields("multipart/form-data; boundary=XyZ", body.encode("utf-8")) == [
        ("q", "first\r\nline"), ("réponse", "однако"), ("f", "a.txt")]


def test_a_body_that_is_not_a_readable_form_is_refused():
    with pytest.raises(InvalidRequest):
        posted_fields("multipart/form-data; boundary=other", b"--XyZ\r\nnot it\r\n--XyZ--\r\n")
    with pytest.raises(InvalidRequest):
        posted_fields("multipart/form-data", b"no boundary")
    with pytest.raises(UnsupportedMediaType):
        posted_fields("text/plain", b"a=1")
