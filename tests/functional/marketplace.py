"""A small driver for the HTTP API through Chalice's test client."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from chalicelib import deps
from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT, WORKER, Principal
from chalicelib.handlers import accounts, tasks
from chalicelib.handlers.accounts import create_account
from chalicelib.handlers.platform import Platform


def in_containers(tokens: list[str], work: Callable[[Platform, Principal], None]) -> None:
    """Run work(container, worker) for each worker's token, each worker on a container of its
    own and all starting at once; raise the first error any of them met."""
    principals = [accounts.authenticate(platform(), t, WORKER) for t in tokens]
    errors: list[Exception] = []
    start = threading.Barrier(len(principals))

    def run(worker: Principal) -> None:
        container = deps._build()
        start.wait()
        try:
            work(container, worker)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in principals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def race(tokens: list[str], job_id: str, answer: dict) -> list[tuple[str, str, Any]]:
    """Workers, each on a container of its own, lease and answer the job all at once until it
    has nothing for them; return (item id, worker id, receipt) per accepted answer. Raises
    the first error any of them met."""
    accepted: list[tuple[str, str, Any]] = []

    def work(container: Platform, worker: Principal) -> None:
        while (task := tasks.lease_next_task(container, worker, job_id)) is not None:
            receipt = tasks.submit_answer(container, worker, task.assignment_id, answer)
            accepted.append((task.item.item_id, worker.account_id, receipt))

    in_containers(tokens, work)
    return accepted


class Api:
    """Calls the API as one client and any number of workers."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = stack.client.http
        _, self.key = create_account(platform(), CLIENT, "Test client")

    @classmethod
    def shared(cls, stack: Any) -> "Api":
        """One Api per stack, for tests that call many times (property tests)."""
        if getattr(stack, "_api", None) is None:
            stack._api = cls(stack)
        return stack._api

    def shared_worker(self) -> str:
        """One registered worker's token, made on first use."""
        if getattr(self, "_worker_token", None) is None:
            self._worker_token = self.worker("shared")
        return self._worker_token

    def call(self, method: str, path: str, body: Any = None, headers: dict | None = None
             ) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of one request."""
        headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        response = getattr(self.http, method.lower())(path, headers=headers, body=payload) \
            if payload is not None else getattr(self.http, method.lower())(path, headers=headers)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        return response.status_code, (json.loads(text) if text else None)

    def as_client(self, method: str, path: str, body: Any = None, key: str | None = None):
        """A request with the client's API key."""
        return self.call(method, path, body, {"X-Api-Key": key or self.key})

    def as_worker(self, token: str, method: str, path: str, body: Any = None):
        """A request with a worker token."""
        return self.call(method, path, body, {"Authorization": f"Bearer {token}"})

    def worker(self, name: str = "w", skills: list[str] | None = None) -> str:
        """Register a worker; return its token."""
        status, body = self.call("POST", "/workers", {"name": name, "skills": skills or ["en"]})
        assert status == 201, body
        return body["token"]

    def job(self, items: int = 4, redundancy: int = 2, task_type: str = "categorical",
            gold: dict[int, dict] | None = None, **extra: Any) -> dict:
        """Quote and post a job, ingest its items, and return the job as active; `gold` gives
        the known answer of items by position."""
        spec = {"task_type": task_type, "items": items, "redundancy": redundancy}
        spec.update(extra.pop("quote", {}))
        status, quote = self.as_client("POST", "/quotes", spec)
        assert status == 201, quote
        body = {"quote_id": quote["quote_id"], "instructions": "Choose the sentiment.",
                "answer_schema": {"labels": ["pos", "neg", "neutral"]}
                if task_type == "categorical" else {"min_length": 1, "max_length": 200},
                "items": [{"data": {"text": f"item {n}"}, "external_id": f"ext-{n}",
                           **({"gold": gold[n]} if gold and n in gold else {})}
                          for n in range(items)]}
        body.update(extra)
        status, job = self.as_client("POST", "/jobs", body)
        assert status == 202, job
        self.posted = job  # the creation answer (it alone holds a callback's secret)
        self.stack.drain()
        status, job = self.as_client("GET", f"/jobs/{job['job_id']}")
        assert status == 200 and job["state"] == "active", job
        return job

    def lease(self, token: str, job_id: str | None = None) -> tuple[int, Any]:
        """GET /tasks/next."""
        path = "/tasks/next" + (f"?job_id={job_id}" if job_id else "")
        return self.as_worker(token, "GET", path)

    def submit(self, token: str, assignment_id: str, answer: dict) -> tuple[int, Any]:
        """POST /assignments/{id}/submit."""
        return self.as_worker(token, "POST", f"/assignments/{assignment_id}/submit", answer)

    def lease_suite(self, token: str, job_id: str | None, count: Any) -> tuple[int, Any]:
        """GET /tasks/next?count= (and job_id when given)."""
        query = f"count={count}" + (f"&job_id={job_id}" if job_id else "")
        return self.as_worker(token, "GET", f"/tasks/next?{query}")

    def submit_suite(self, token: str, answers: Any, following: dict | None = None,
                     key: str | None = None) -> tuple[int, Any]:
        """POST /assignments/submit with answers (and "next" when given; an Idempotency-Key
        when key is given)."""
        body: dict[str, Any] = {"answers": answers}
        if following is not None:
            body["next"] = following
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.call("POST", "/assignments/submit", body, headers)
