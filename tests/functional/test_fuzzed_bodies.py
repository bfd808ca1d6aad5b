"""Generated bodies and ids never produce a 500: every answer is JSON with an error code."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.functional.marketplace import Api

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                       children, max_size=4),
    max_leaves=12)
FIELDS = ["task_type", "items", "redundancy", "reward_cents", "cohort", "quote_id",
          "instructions", "answer_schema", "not_applicable", "lease_seconds", "deadline",
          "required_skills", "label", "text", "name", "skills", "title"]
BODIES = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6).map(json.dumps),
    st.binary(max_size=40),
)
IDS = st.one_of(st.text(alphabet="abcdefjoqs_0123456789", max_size=40),
                st.sampled_from(["job_0123456789abcdef", "asg_0123456789abcdef_000001_abcdef01_1"]))
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(status, body):
    assert status < 500, body
    if status >= 400:
        assert isinstance(body, dict) and body["error"] and body["message"], body


@SLOW
@given(body=BODIES)
def test_client_posts_never_fail_with_a_500(stack, body):
    api = Api.shared(stack)
    for path in ("/quotes", "/jobs"):
        _check(*api.as_client("POST", path, body))


@SLOW
@given(body=BODIES, some_id=IDS)
def test_worker_calls_never_fail_with_a_500(stack, body, some_id):
    api = Api.shared(stack)
    token = api.shared_worker()
    _check(*api.call("POST", "/workers", body))
    _check(*api.as_worker(token, "POST", f"/assignments/{some_id or 'x'}/submit", body))
    _check(*api.as_worker(token, "POST", f"/assignments/{some_id or 'x'}/release"))
    _check(*api.as_worker(token, "GET", f"/tasks/next?job_id={some_id}"))
    _check(*api.as_client("GET", f"/jobs/{some_id or 'x'}"))
    _check(*api.as_client("GET", f"/jobs/{some_id or 'x'}/results?limit={some_id}"))


SUITE_ENTRIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"assignment_id": IDS | JSON_VALUES},
                          optional={"answer": JSON_VALUES, "not_applicable": JSON_VALUES,
                                    "label": JSON_VALUES}))
SUITE_BODIES = st.one_of(
    BODIES,
    st.fixed_dictionaries({"answers": st.lists(SUITE_ENTRIES, max_size=22) | JSON_VALUES},
                          optional={"next": JSON_VALUES | st.fixed_dictionaries(
                              {}, optional={"count": JSON_VALUES, "job_id": IDS | JSON_VALUES})}
                          ).map(json.dumps))


@SLOW
@given(body=SUITE_BODIES, count=st.text(max_size=4) | st.integers(-5, 30).map(str))
def test_suite_calls_never_fail_with_a_500(stack, body, count):
    api = Api.shared(stack)
    token = api.shared_worker()
    _check(*api.as_worker(token, "POST", "/assignments/submit", body))
    _check(*api.as_worker(token, "GET", f"/tasks/next?count={count}"))
