"""What the MTurk API's functional tests share: the app on a moto stack served over HTTP,
and requesters (client accounts with a requester key) driving it through boto3's own `mturk`
client, unmodified."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import boto3
import requests
from botocore.config import Config

from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT, WORKER
from chalicelib.handlers.accounts import create_account
from tests.conftest import ROOT, deployed_stack

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
EXTERNAL_QUESTION = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>{url}</ExternalURL>'
    "<FrameHeight>{height}</FrameHeight></ExternalQuestion>")


def external_question(url: str, height: int = 600) -> str:
    """An ExternalQuestion as tools send it (the URL's `&` escaped, as Mephisto does)."""
    return EXTERNAL_QUESTION.format(url=escape(url), height=height)


@dataclass
class Served:
    """The app on a moto stack behind a real HTTP server."""

    stack: Any
    url: str

    def __getitem__(self, name: str) -> Any:  # the older tests read server["url"]
        return getattr(self, name)


def served_stack() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (use as a module fixture)."""
    import pytest  # noqa: PLC0415 - pytest is only needed by the tests that serve a stack

    from infra.api_server import make_api_server  # noqa: PLC0415 - loads the whole app

    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as stack:
        server = make_api_server(stack.app.app, ROOT, "dev", "127.0.0.1", 0)
        host, port = server.server.server_address[:2]
        thread = threading.Thread(target=server.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Served(stack, f"http://{host}:{port}")
        finally:
            server.server.shutdown()
            server.server.server_close()


def call(server: Served, method: str, path: str, key: str, **kwargs: Any) -> requests.Response:
    """A request to the platform's own API with an account's X-Api-Key."""
    return requests.request(method, server.url + path, headers={"X-Api-Key": key}, timeout=30,
                            **kwargs)


def mturk_client(server: Served, key_id: str, secret: str, **extra: Any) -> Any:
    """boto3's mturk client pointed at the served stack, signing with a requester key."""
    return boto3.client("mturk", endpoint_url=server.url + "/mturk", region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        aws_session_token=None, config=NO_RETRIES, **extra)


@dataclass
class Requester:
    """A client account, its API key, its requester key pair and a boto3 mturk client."""

    account_id: str
    api_key: str
    key_id: str
    secret: str
    mturk: Any


def requester(server: Served, name: str = "Lab") -> Requester:
    """A fresh client account with a requester key made through the client API."""
    principal, api_key = create_account(platform(), CLIENT, name)
    made = call(server, "POST", "/requester-keys", api_key)
    assert made.status_code == 201, made.text
    keys = made.json()
    return Requester(principal.account_id, api_key, keys["access_key_id"],
                     keys["secret_access_key"],
                     mturk_client(server, keys["access_key_id"], keys["secret_access_key"]))


def worker(name: str = "Worker") -> tuple[str, str]:
    """A fresh worker account: (account id, API key)."""
    principal, key = create_account(platform(), WORKER, name)
    return principal.account_id, key
