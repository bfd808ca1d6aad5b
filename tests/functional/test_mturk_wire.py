"""The MTurk-compatible requester API on the wire: boto3's own `mturk` client, unmodified,
signs with a requester key made through the client API and calls a real HTTP server."""
from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
import requests
from botocore.exceptions import ClientError

from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT
from chalicelib.handlers.accounts import create_account
from tests.functional.mturk_stack import NO_RETRIES, Served, call, mturk_client, served_stack

@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (one server per module)."""
    yield from served_stack()


def _client_key() -> str:
    return create_account(platform(), CLIENT, "Lab")[1]


def _call(server: Served, method: str, path: str, key: str) -> requests.Response:
    return call(server, method, path, key)


def _requester_key(server: Served, key: str) -> dict:
    response = _call(server, "POST", "/requester-keys", key)
    assert response.status_code == 201, response.text
    return response.json()


def _mturk(server: Served, key_id: str, secret: str, **extra: Any) -> Any:
    return mturk_client(server, key_id, secret, **extra)


def test_boto3_gets_the_account_balance_with_a_key_made_through_the_client_api(server):
    # GIVEN a client with a job (its unspent pool is what it can still spend) and a key pair
    api_key = _client_key()
    from tests.functional.marketplace import Api

    api = Api(server["stack"])
    api.key = api_key
    job = api.job(items=4, redundancy=1, pilot={"items": 0})
    pool = job["money"]["pool_cents"]
    assert pool > 0
    keys = _requester_key(server, api_key)
    # WHEN boto3's mturk client asks for the balance
    answer = _mturk(server, keys["access_key_id"], keys["secret_access_key"]).get_account_balance()
    # THEN it is the pool in dollars with two decimals, in MTurk's shape
    assert answer["AvailableBalance"] == f"{pool // 100}.{pool % 100:02d}"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RequestId"]


def test_a_client_without_jobs_has_a_zero_balance(server):
    keys = _requester_key(server, _client_key())
    mturk = _mturk(server, keys["access_key_id"], keys["secret_access_key"])
    assert mturk.get_account_balance()["AvailableBalance"] == "0.00"


def _error(call: Any) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response


def test_a_wrong_secret_is_an_invalid_signature(server):
    keys = _requester_key(server, _client_key())
    mturk = _mturk(server, keys["access_key_id"], keys["secret_access_key"] + "x")
    error = _error(mturk.get_account_balance)
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_unknown_key_is_an_unrecognized_client(server):
    mturk = _mturk(server, "AKCRNOSUCHKEY0000000", "secret")
    error = _error(mturk.get_account_balance)
    assert error["Error"]["Code"] == "UnrecognizedClientException"


def test_a_clock_skewed_by_more_than_15_minutes_is_refused(server, monkeypatch):
    keys = _requester_key(server, _client_key())
    mturk = _mturk(server, keys["access_key_id"], keys["secret_access_key"])
    real = botocore.auth.get_current_datetime
    for minutes, accepted in ((-14, True), (-16, False), (16, False)):
        monkeypatch.setattr(botocore.auth, "get_current_datetime",
                            lambda m=minutes: real() + datetime.timedelta(minutes=m))
        if accepted:
            assert mturk.get_account_balance()["AvailableBalance"] == "0.00"
            continue
        error = _error(mturk.get_account_balance)
        assert error["Error"]["Code"] == "InvalidSignatureException"
        assert "Signature expired" in error["Error"]["Message"] or \
            "not yet current" in error["Error"]["Message"]


def test_an_operation_not_built_yet_is_a_request_error(server):
    keys = _requester_key(server, _client_key())
    mturk = _mturk(server, keys["access_key_id"], keys["secret_access_key"])
    with pytest.raises(mturk.exceptions.RequestError) as raised:
        mturk.list_reviewable_hits()
    error = raised.value.response
    assert error["Error"]["Code"] == "RequestError"
    assert "not supported yet" in error["Error"]["Message"]
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.OperationNotSupported"


def _signed_post(server: dict, keys: dict, target: str, body: bytes) -> requests.Response:
    """A request signed by hand with botocore's signer (as oTree signs)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=server["url"] + "/mturk", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(keys["access_key_id"], keys["secret_access_key"]),
              "mturk-requester", "us-east-1").add_auth(request)
    return requests.post(request.url, data=body, headers=dict(request.headers), timeout=30)


def test_unknown_operations_and_malformed_json_get_mturk_errors(server):
    keys = _requester_key(server, _client_key())
    response = _signed_post(server, keys, "MTurkRequesterServiceV20170117.MakeCoffee", b"{}")
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    response = _signed_post(server, keys, "MTurkRequesterServiceV20170117.GetAccountBalance",
                            b"{not json")
    assert response.status_code == 400 and response.json()["__type"] == "SerializationException"
    # the signature covers the body: a body changed after signing is refused
    response = _signed_post(server, keys, "MTurkRequesterServiceV20170117.GetAccountBalance",
                            b"{}")
    assert response.status_code == 200 and response.json()["AvailableBalance"] == "0.00"
    response = requests.post(server["url"] + "/mturk", data=b"{\"x\": 1}",
                             headers={**dict(response.request.headers)}, timeout=30)
    assert response.json()["__type"] == "InvalidSignatureException"


def test_a_request_without_a_signature_is_refused(server):
    response = requests.post(server["url"] + "/mturk", data=b"{}", timeout=30, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance"})
    assert response.status_code == 400
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


def test_the_endpoint_variable_redirects_a_client_built_without_endpoint_url(server, monkeypatch):
    keys = _requester_key(server, _client_key())
    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", server["url"] + "/mturk")
    mturk = boto3.client("mturk", region_name="us-east-1", config=NO_RETRIES,
                         aws_access_key_id=keys["access_key_id"],
                         aws_secret_access_key=keys["secret_access_key"],
                         aws_session_token=None)
    assert mturk.meta.endpoint_url == server["url"] + "/mturk"
    assert mturk.get_account_balance()["AvailableBalance"] == "0.00"


def test_keys_are_listed_limited_to_two_and_deleted_and_the_secret_is_shown_once(server):
    api_key = _client_key()
    first = _requester_key(server, api_key)
    second = _requester_key(server, api_key)
    assert first["access_key_id"] != second["access_key_id"]
    # a third is refused while two are live
    refused = _call(server, "POST", "/requester-keys", api_key)
    assert refused.status_code == 409 and refused.json()["error"] == "requester_key_limit"
    listed = _call(server, "GET", "/requester-keys", api_key)
    assert listed.status_code == 200
    assert [k["access_key_id"] for k in listed.json()["requester_keys"]] == \
        [first["access_key_id"], second["access_key_id"]]
    assert all(set(k) == {"access_key_id", "created_at"} for k in listed.json()["requester_keys"])
    for secret in (first["secret_access_key"], second["secret_access_key"]):
        assert secret not in listed.text and secret not in refused.text
    # another client can neither see nor delete them
    other = _client_key()
    assert _call(server, "GET", "/requester-keys", other).json() == {"requester_keys": []}
    gone = _call(server, "DELETE", f"/requester-keys/{first['access_key_id']}", other)
    assert gone.status_code == 404 and gone.json()["error"] == "requester_key_not_found"
    # rotation: the first key used, then deleted; it stops working and a new one can be made
    mturk = _mturk(server, first["access_key_id"], first["secret_access_key"])
    assert mturk.get_account_balance()["AvailableBalance"] == "0.00"
    deleted = _call(server, "DELETE", f"/requester-keys/{first['access_key_id']}", api_key)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert first["secret_access_key"] not in deleted.text
    assert _error(mturk.get_account_balance)["Error"]["Code"] == "UnrecognizedClientException"
    third = _requester_key(server, api_key)
    listed = _call(server, "GET", "/requester-keys", api_key).json()["requester_keys"]
    assert {k["access_key_id"] for k in listed} == {second["access_key_id"],
                                                    third["access_key_id"]}


def test_the_secret_is_stored_sealed(server):
    # GIVEN a key made through the client API
    keys = _requester_key(server, _client_key())
    # THEN no table holds its secret in the clear
    ddb = boto3.client("dynamodb")
    for name in ddb.list_tables()["TableNames"]:
        dump = json.dumps(ddb.scan(TableName=name)["Items"], default=str)
        assert keys["secret_access_key"] not in dump, name


def test_the_crowd_command_creates_lists_and_deletes_requester_keys(server, tmp_path, capsys):
    import io

    from crowd_client import cli

    api_key = _client_key()

    def crowd(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = cli.main(["--api-url", server["url"], "--api-key", api_key, *argv],
                        {"CROWD_CONFIG": str(tmp_path / "none.json")}, out)
        return code, out.getvalue()

    # WHEN a key is made with the command
    code, made = crowd("requester-keys", "create")
    assert code == 0
    fields = dict(line.split(" = ") for line in made.splitlines() if " = " in line)
    assert f"AWS_ENDPOINT_URL_MTURK={server['url']}/mturk" in made
    # THEN boto3 signs with it, the list names it, and after delete it is refused
    mturk = _mturk(server, fields["aws_access_key_id"], fields["aws_secret_access_key"])
    assert mturk.get_account_balance()["AvailableBalance"] == "0.00"
    code, listed = crowd("requester-keys", "list")
    assert code == 0 and fields["aws_access_key_id"] in listed
    assert fields["aws_secret_access_key"] not in listed
    assert crowd("requester-keys", "delete", fields["aws_access_key_id"]) == \
        (0, f"deleted {fields['aws_access_key_id']}\n")
    assert crowd("requester-keys", "list") == (0, "")
    assert crowd("requester-keys", "delete", fields["aws_access_key_id"])[0] == cli.EXIT_API
    assert "requester_key_not_found" in capsys.readouterr().err


def test_the_openapi_document_describes_mturk_s_protocol(server):
    doc = requests.get(server["url"] + "/openapi.json", timeout=30).json()
    operation = doc["paths"]["/mturk"]["post"]
    assert "security" not in operation  # SigV4, not X-Api-Key
    assert list(operation["requestBody"]["content"]) == ["application/x-amz-json-1.1"]
    assert operation["responses"]["4XX"]["content"]["application/x-amz-json-1.1"][
        "schema"]["required"] == ["__type", "Message"]


def test_a_void_operation_answers_exactly_an_empty_object(server, monkeypatch):
    # GIVEN an operation with no output (as ApproveAssignment will be) served by the route
    from chalicelib.domain import mturk as wire
    from chalicelib.handlers import mturk as operations

    monkeypatch.setitem(operations.OPERATIONS, "ApproveAssignment",
                        lambda p, client, body: wire.void())
    keys = _requester_key(server, _client_key())
    mturk = _mturk(server, keys["access_key_id"], keys["secret_access_key"])
    # WHEN boto3 calls it THEN the body is `{}` and botocore gives only ResponseMetadata
    response = _signed_post(server, keys, "MTurkRequesterServiceV20170117.ApproveAssignment",
                            b'{"AssignmentId": "A1"}')
    assert response.status_code == 200 and response.content == b"{}"
    assert list(mturk.approve_assignment(AssignmentId="A1")) == ["ResponseMetadata"]
