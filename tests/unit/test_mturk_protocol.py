"""The MTurk wire rules on their own: SigV4 checked over what the client signed (any
SignedHeaders, the stage prefix of the path, the clock), errors in MTurk's shape, money and
timestamps, and the pagination rule (NextToken on every non-empty page, none on the empty)."""
from __future__ import annotations

import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.adapters.sigv4 import SignedRequest
from chalicelib.domain import mturk
from chalicelib.domain.model import CLIENT, WORKER, Principal
from chalicelib.handlers import mturk as operations
from chalicelib.handlers import requester_keys
from chalicelib.errors import Conflict, NotFound
from tests.fakes import FakeClock, FakeRequesterKeys, make_platform

KEY_ID, SECRET = "AKCRTESTKEY000000001", "s3cret/with+chars"
CLIENT_P = Principal("cli_1", CLIENT, "Lab")
TARGET = "MTurkRequesterServiceV20170117.GetAccountBalance"


def _signed(path: str = "/mturk", seen_path: str | None = None, body: bytes = b"{}",
            secret: str = SECRET, at: float | None = None, drop: tuple[str, ...] = (),
            query: str = "") -> tuple[SignedRequest, float]:
    """A request signed by botocore's signer at `at`, as the server receives it."""
    request = AWSRequest(method="POST", url=f"https://api.example.org{path}{query}", data=body,
                         headers={"Content-Type": mturk.CONTENT_TYPE, "X-Amz-Target": TARGET,
                                  "Host": "api.example.org"})
    for name in drop:
        del request.headers[name]
    signer = SigV4Auth(Credentials(KEY_ID, secret), "mturk-requester", "us-east-1")
    moment = datetime.datetime(2026, 12, 6, 12, 0, 0) if at is None else \
        datetime.datetime.utcfromtimestamp(at)
    request.context["timestamp"] = moment.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{request.context['timestamp'][:8]}/us-east-1/"
        f"mturk-requester/aws4_request, SignedHeaders={names}, Signature={signature}")
    pairs = [tuple(p.split("=", 1)) for p in query.lstrip("?").split("&") if p]
    received = SignedRequest("POST", seen_path or path, pairs,  # type: ignore[arg-type]
                             {k.lower(): v for k, v in request.headers.items()}, body)
    return received, moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _platform(clock_at: float):
    keys = FakeRequesterKeys({"cli_1": CLIENT_P, "wrk_1": Principal("wrk_1", WORKER)})
    keys.create("cli_1", KEY_ID, SECRET, 0.0, 2)
    return make_platform(FakeClock(clock_at), requester_keys=keys)


def _refusal(p, request) -> mturk.MTurkError:
    with pytest.raises(mturk.MTurkError) as raised:
        operations.requester(p, request)
    return raised.value


def test_a_request_signed_by_botocore_is_the_requester_s():
    request, at = _signed()
    assert operations.requester(_platform(at), request) == CLIENT_P


def test_whatever_signed_headers_lists_is_checked():
    # GIVEN a client that signs only host;x-amz-date;x-amz-target (as a PHP client did)
    request, at = _signed(drop=("Content-Type",))
    assert "SignedHeaders=host;x-amz-date;x-amz-target," in request.headers["authorization"]
    request.headers["content-type"] = mturk.CONTENT_TYPE  # sent, but not signed
    assert operations.requester(_platform(at), request) == CLIENT_P
    # WHEN a signed header is changed on the way THEN the signature no longer matches
    changed = SignedRequest(request.method, request.path, request.query,
                            {**request.headers, "x-amz-target": TARGET + "x"}, request.body)
    assert _refusal(_platform(at), changed).kind == "InvalidSignatureException"


def test_the_signed_path_is_the_client_visible_one_with_the_stage_prefix():
    request, at = _signed(path="/prod/mturk")
    assert operations.requester(_platform(at), request) == CLIENT_P
    # a verifier that used the route's path (without the stage) would refuse it
    stripped, _ = _signed(path="/prod/mturk", seen_path="/mturk")
    assert _refusal(_platform(at), stripped).kind == "InvalidSignatureException"


def test_the_query_string_and_body_are_signed():
    request, at = _signed(query="?b=2&a=1")
    assert operations.requester(_platform(at), request) == CLIENT_P
    tampered = SignedRequest(request.method, request.path, request.query, request.headers,
                             b'{"MaxResults": 5}')
    assert _refusal(_platform(at), tampered).kind == "InvalidSignatureException"


@pytest.mark.parametrize("skew, accepted", [(-899, True), (899, True), (-901, False),
                                            (901, False)])
def test_the_clock_may_differ_by_15_minutes(skew, accepted):
    request, at = _signed()
    p = _platform(at - skew)
    if accepted:
        assert operations.requester(p, request) == CLIENT_P
    else:
        error = _refusal(p, request)
        assert error.kind == "InvalidSignatureException" and error.status == 400
        assert ("expired" if skew < 0 else "not yet current") in error.message


def test_wrong_secret_unknown_key_and_missing_signature_are_mturk_errors():
    request, at = _signed(secret="wrong")
    assert _refusal(_platform(at), request).kind == "InvalidSignatureException"
    p = _platform(at)
    p.requester_keys.delete("cli_1", KEY_ID)  # type: ignore[union-attr]
    assert _refusal(p, _signed()[0]).kind == "UnrecognizedClientException"
    bare = SignedRequest("POST", "/mturk", [], {"host": "h"}, b"{}")
    assert _refusal(_platform(at), bare).kind == "MissingAuthenticationTokenException"
    other, _ = _signed()
    wrong_service = SignedRequest(other.method, other.path, other.query, {
        **other.headers, "authorization": other.headers["authorization"].replace(
            "mturk-requester", "execute-api")}, other.body)
    assert _refusal(_platform(at), wrong_service).kind == "InvalidSignatureException"


def test_a_verified_key_is_cached_and_a_deleted_one_forgotten_on_this_container():
    request, at = _signed()
    p = _platform(at)
    assert operations.requester(p, request) == CLIENT_P
    requester_keys.delete_key(p, CLIENT_P, KEY_ID)
    assert _refusal(p, request).kind == "UnrecognizedClientException"


def test_keys_are_at_most_two_and_only_the_owner_deletes_one():
    p = make_platform(requester_keys=FakeRequesterKeys({"cli_1": CLIENT_P}))
    first = requester_keys.create_key(p, CLIENT_P)
    assert first["access_key_id"].startswith("AKCR") and len(first["access_key_id"]) == 20
    requester_keys.create_key(p, CLIENT_P)
    with pytest.raises(Conflict):
        requester_keys.create_key(p, CLIENT_P)
    listed = requester_keys.list_keys(p, CLIENT_P)["requester_keys"]
    assert len(listed) == 2 and all("secret_access_key" not in k for k in listed)
    with pytest.raises(NotFound):
        requester_keys.delete_key(p, Principal("cli_2", CLIENT), first["access_key_id"])
    requester_keys.delete_key(p, CLIENT_P, first["access_key_id"])
    assert requester_keys.create_key(p, CLIENT_P)["secret_access_key"]


def test_errors_have_mturk_s_shape():
    body = mturk.request_error("Hit X does not exist.", "AWS.MechanicalTurk.HITDoesNotExist"
                               ).to_body(1624047673.969)
    assert body == {"__type": "RequestError", "Message": "Hit X does not exist. (1624047673969)",
                    "TurkErrorCode": "AWS.MechanicalTurk.HITDoesNotExist"}
    with pytest.raises(mturk.MTurkError) as raised:
        mturk.operation_of("MTurkRequesterServiceV20170117.MakeCoffee")
    assert raised.value.kind == "UnknownOperationException"
    with pytest.raises(mturk.MTurkError):
        mturk.operation_of("OtherService.GetAccountBalance")
    assert mturk.operation_of(TARGET) == "GetAccountBalance"
    assert mturk.parse_body(b"") == {}
    for bad in (b"{x", b"[1]"):
        with pytest.raises(mturk.MTurkError) as raised:
            mturk.parse_body(bad)
        assert raised.value.kind == "SerializationException"


def test_every_operation_not_built_is_a_request_error_saying_so():
    p = make_platform()
    for operation in sorted(mturk.OPERATIONS - set(operations.OPERATIONS)):
        with pytest.raises(mturk.MTurkError) as raised:
            operations.call(p, CLIENT_P, operation, {})
        assert raised.value.kind == "RequestError" and "not supported yet" in raised.value.message
    assert len(mturk.OPERATIONS) == 39


def test_money_and_timestamps_as_mturk_writes_them():
    assert [mturk.money(c) for c in (0, 5, 1234, 100000, -250)] == \
        ["0.00", "0.05", "12.34", "1000.00", "-2.50"]
    assert mturk.epoch(1795849668.12345) == 1795849668.123
    assert mturk.read_timestamp({"ExpireAt": 0}, "ExpireAt") == 0.0
    assert mturk.read_timestamp({"ExpireAt": 1420070400.5}, "ExpireAt") == 1420070400.5
    for bad in ("2015-01-01", True, -1, None):
        with pytest.raises(mturk.MTurkError):
            mturk.read_timestamp({"ExpireAt": bad}, "ExpireAt")


def _walk(tokens: mturk.PageTokens, items: list[int], size: int, scope: str = "cli_1"):
    """Pages of a list of items served from a store whose cursor is the next index."""
    def fetch(cursor: str | None, limit: int) -> tuple[list[int], str | None]:
        start = int(cursor or 0)
        end = start + limit
        return items[start:end], (str(end) if end < len(items) else None)

    body: dict = {"MaxResults": size}
    while True:
        page = tokens.page(tokens.read(body, "ListHITs", scope), fetch, "ListHITs", scope,
                           "HITs", lambda n: {"N": n})
        yield page
        if "NextToken" not in page:
            return
        body = {"MaxResults": size, "NextToken": page["NextToken"]}


def test_pages_have_a_token_when_not_empty_and_end_with_an_empty_page():
    tokens = mturk.PageTokens(b"k" * 32)
    pages = list(_walk(tokens, list(range(5)), 2))
    assert [p["NumResults"] for p in pages] == [2, 2, 1, 0]
    assert [[h["N"] for h in p["HITs"]] for p in pages] == [[0, 1], [2, 3], [4], []]
    assert all("NextToken" in p for p in pages[:-1]) and "NextToken" not in pages[-1]
    issued = [p["NextToken"] for p in pages[:-1]]
    assert len(set(issued)) == len(issued) and all(1 <= len(t) <= 255 for t in issued)
    # no items: one empty page without a token
    assert list(_walk(tokens, [], 2)) == [{"NumResults": 0, "HITs": []}]


def test_tokens_are_bound_to_their_list_and_caller_and_bounds_are_checked():
    tokens = mturk.PageTokens(b"k" * 32)
    token = next(_walk(tokens, list(range(5)), 2))["NextToken"]
    assert token.startswith("Mg.")  # the cursor "2"; "Mw" below would be "3"
    for operation, scope, forged in (("ListHITs", "cli_2", token),
                                     ("ListWorkerBlocks", "cli_1", token),
                                     ("ListHITs", "cli_1", "Mw." + token.split(".")[1]),
                                     ("ListHITs", "cli_1", "x" * 5000)):
        with pytest.raises(mturk.MTurkError) as raised:
            tokens.read({"NextToken": forged}, operation, scope)
        assert raised.value.kind == "RequestError"
    for bad in (0, 101, "10", True):
        with pytest.raises(mturk.MTurkError) as raised:
            tokens.read({"MaxResults": bad}, "ListHITs", "cli_1")
        assert raised.value.kind == "ValidationException"
    assert tokens.read({}, "ListHITs", "cli_1") == mturk.PageRequest(None, 100)


def test_a_long_store_cursor_round_trips_in_a_token():
    tokens = mturk.PageTokens(b"k" * 32)
    cursor = "c" * 2048  # a sealed DynamoDB key can be this long
    page = tokens.page(mturk.PageRequest(None, 1), lambda c, n: ([1], cursor), "ListHITs",
                       "cli_1", "HITs", lambda n: n)
    assert tokens.read({"NextToken": page["NextToken"]}, "ListHITs", "cli_1").cursor == cursor
    assert mturk.void() == {}
