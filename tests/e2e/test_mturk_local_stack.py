"""`make run`'s stack (moto as a server, the API in its own process) serves the
MTurk-compatible API: a requester key made with the `crowd` command signs boto3's own `mturk`
client, pointed there by AWS_ENDPOINT_URL_MTURK alone."""
from __future__ import annotations

import io

import boto3
import pytest
from botocore.config import Config

from crowd_client import cli
from tests.e2e.stack_process import local_stack_process


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack_process(tmp_path_factory.mktemp("mturk-stack")) as running:
        yield running


def test_a_key_from_the_crowd_command_signs_boto3_s_mturk_client(stack, tmp_path, monkeypatch):
    # GIVEN a requester key made with the command against the running stack
    out = io.StringIO()
    code = cli.main(["--api-url", stack.info["base_url"], "--api-key", stack.info["client_key"],
                     "requester-keys", "create"], {"CROWD_CONFIG": str(tmp_path / "none.json")},
                    out)
    assert code == 0, out.getvalue()
    fields = dict(line.split(" = ") for line in out.getvalue().splitlines() if " = " in line)
    # WHEN a client built without endpoint_url asks for the balance
    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", stack.info["base_url"] + "/mturk")
    mturk = boto3.client("mturk", region_name="us-east-1",
                         aws_access_key_id=fields["aws_access_key_id"],
                         aws_secret_access_key=fields["aws_secret_access_key"],
                         aws_session_token=None,
                         config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    # THEN it is answered in MTurk's shape, and an operation not served is a RequestError
    assert mturk.get_account_balance()["AvailableBalance"] == "0.00"
    assert mturk.list_hits()["NumResults"] == 0
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.list_reviewable_hits()
