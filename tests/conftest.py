"""Shared fixtures: the whole stack on moto in-process, with the real template and state machine."""
from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# Fake credentials before anything imports boto3: nothing here may reach real AWS.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_SESSION_TOKEN="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_REGION="us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

# numpy loaded once, here, before any thread runs. Its first import sets OPENBLAS_MAIN_FREE in
# os.environ and deletes it again; a stage importing it lazily on moto's state machine thread
# while a test on the main thread sets or restores the environment could find the key gone
# (a KeyError inside FitModel that depended on which tests ran before).
import numpy  # noqa: E402,F401

# No time limit per example: the suite shares two cores with the xdist workers and whatever
# else runs, so a per-example deadline fails on load, not on the code.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


def _share_botocore_loader() -> None:
    """One botocore data loader for the process. Each botocore session reads the endpoint
    and service model files through a loader of its own, and the tests make sessions by the
    hundred (moto's mock gives every test a new default session, pynamodb makes one per
    thread): with one loader each file is read and parsed once."""
    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)


_share_botocore_loader()


@dataclass
class Stack:
    """The app on an in-process moto stack, with handles tests need."""

    app: Any
    client: Any
    pump: Any
    sfn: Any
    sqs: Any
    outputs: dict[str, str]

    def drain(self) -> int:
        """Deliver every queued SQS message to its consumer, until the queues are empty."""
        return self.pump.drain()

    def wait_for_state(self, job_id: str, key: str, states: tuple[str, ...],
                       timeout: float = 30.0) -> dict:
        """Poll GET /jobs/{id} (pumping queues) until the job reaches one of states."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            response = self.client.http.get(f"/jobs/{job_id}", headers={"X-Api-Key": key})
            body = json.loads(response.body)
            if body.get("state") in states or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


@contextmanager
def deployed_stack(env: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The app on a freshly deployed moto stack for the with-block: template deployed, stage
    functions routed, queues pumpable. The stage's variables are set through env, which the
    caller undoes after the block (per test with `monkeypatch`, per module with
    `pytest.MonkeyPatch.context()`)."""
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import deps
    from infra import moto_shims
    from infra.local_aws import SqsPump, sqs_batch_sizes
    from infra.stack import STAGE_FUNCTIONS, app_environment, deploy_stack

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_shims.install_all()
        outputs = deploy_stack(boto3.client("cloudformation"), "crowd-dev-data", "crowd", "dev",
                               waiter_delay=1)
        for name, value in app_environment(outputs).items():
            env.setenv(name, value)
        from infra.rate_limits import ensure_usage_plan

        env.setenv("USAGE_PLAN_ID", ensure_usage_plan(boto3.client("apigateway"), "crowd", "dev"))
        env.setenv("OPEN_WORKER_REGISTRATION", "true")
        # Receivers in tests listen on 127.0.0.1 over plain http.
        env.setenv("WEBHOOK_ALLOW_INSECURE", "true")
        deps.reset()
        import app as app_module

        handlers = {name: getattr(app_module, name) for name in STAGE_FUNCTIONS}
        sqs = boto3.client("sqs")
        pump = SqsPump(sqs, {os.environ["INGEST_QUEUE_NAME"]: app_module.ingest_items,
                             os.environ["RESULTS_QUEUE_NAME"]: app_module.count_answers,
                             os.environ["WEBHOOK_QUEUE_NAME"]: app_module.deliver_webhooks},
                       batch_sizes=sqs_batch_sizes(app_module.app))
        with moto_shims.routed_stage_functions(boto3.client("lambda"), boto3.client("iam"),
                                               handlers), \
                moto_shims.make_step_functions_instant(), \
                Client(app_module.app, stage_name="dev", project_dir=str(ROOT)) as client:
            yield Stack(app_module, client, pump, boto3.client("stepfunctions"), sqs, outputs)
        deps.reset()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A fresh stack per test (tests/adapters shares one per module: module_stack)."""
    with deployed_stack(monkeypatch) as deployed:
        yield deployed
