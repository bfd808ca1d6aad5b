"""Run the whole app locally on moto: `python -m infra.local_stack [--port 8000] [--host 127.0.0.1]`.

One process holds everything:

1. a moto server on 127.0.0.1 (free port; `MOTO_PORT` set first, because moto's
   Step Functions interpreter calls Lambda at `localhost:$MOTO_PORT`), with state
   machine execution switched on through `/moto-api/config`;
2. the data stack (infra/template.yaml) deployed on it as `<app>-<stage>-data`,
   its outputs exported as the app's environment (`AWS_ENDPOINT_URL` points
   boto3/pynamodb at moto; credentials are fake);
3. placeholder stage functions whose invocations run the app's own stage
   functions in-process (infra/moto_shims.py);
4. a thread per queue that pumps the ingest/results/webhook queues into the app's SQS handlers
   and one that calls `finalize_due_jobs` every few seconds (what the SQS event
   source mappings and the schedule do on AWS);
5. seeded local credentials (`_default_seed()`: a client, a worker and an operator);
6. Chalice's local dev server, in the main thread for the CLI.

When ready it prints the base URL, the client API key, the worker token, a curl
line and `READY <base-url>`, and writes the same as JSON to `.local-stack.json`
in the project root (and to `--ready-file` if given). Ctrl-C / SIGTERM stops
everything and removes `.local-stack.json`.

From tests: `with local_stack(port=0) as stack: ...` (or `start_local_stack()` +
`stack.stop()`) runs the same in background threads of the current process.
Note that it sets process-wide environment variables (restored on stop) and
imports the app into `sys.modules`; an e2e suite that must stay isolated from
`mock_aws` tests can run `python -m infra.local_stack --port 0 --ready-file F`
as a subprocess and read F instead.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib
import json
import logging
import os
import signal
import subprocess
import socket
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import moto_shims
from infra.api_server import make_api_server
from infra.local_aws import SqsPump, lambda_context, sqs_batch_sizes, sqs_concurrency
from infra.stack import STAGE_FUNCTIONS, app_environment, deploy_stack, stack_name_for

LOG = logging.getLogger("infra.local_stack")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_FILE_NAME = ".local-stack.json"
REGION = "us-east-1"
# How often the main thread, waiting on the API process, looks at signals caught meanwhile.
_SIGNAL_CHECK_SECONDS = 0.5

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Anything that could send a client elsewhere than the local moto server.
_UNSET_PREFIXES = ("AWS_ENDPOINT_URL_",)
_UNSET_NAMES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def _free_port(host: str) -> int:
    """A TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Environment:
    """Sets process environment variables and restores the previous values on demand."""

    def __init__(self) -> None:
        """Start with nothing changed."""
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        """Set one variable, remembering its first previous value."""
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def unset(self, name: str) -> None:
        """Remove one variable, remembering its previous value."""
        if name in os.environ:
            self._saved.setdefault(name, os.environ.get(name))
            del os.environ[name]

    def restore(self) -> None:
        """Put every changed variable back as it was."""
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def _chalice_stage_environment(project_dir: Path, stage: str) -> dict[str, str]:
    """environment_variables of the stage in .chalice/config.json (global merged with stage), if any."""
    from chalice.config import Config

    config_path = project_dir / ".chalice" / "config.json"
    if not config_path.is_file():
        return {}
    config = Config(chalice_stage=stage, config_from_disk=json.loads(config_path.read_text(encoding="utf-8")))
    return {k: str(v) for k, v in config.environment_variables.items()}


def scheduled_event(rule_name: str, account_id: str) -> dict[str, Any]:
    """An EventBridge 'Scheduled Event', so an @app.schedule handler can parse it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{account_id}:rule/{rule_name}"],
        "detail": {},
    }


def _curl_line(base_url: str, client_key: str | None) -> str:
    """One request a developer can paste to see the API answer."""
    body = '{"task_type": "categorical", "items": 200, "redundancy": 3, "reward_cents": 5}'
    return (
        f"curl -s -X POST {base_url}/quotes -H \"X-Api-Key: {client_key}\" "
        f"-H \"Content-Type: application/json\" -d '{body}'"
    )


@dataclass
class LocalStack:
    """A running local stack: where it listens, its credentials, and how to stop it."""

    base_url: str
    moto_endpoint: str
    client_key: str | None
    worker_token: str | None
    operator_key: str | None
    environment: dict[str, str]
    stack_outputs: dict[str, str]
    app: Any
    state_files: list[Path] = field(default_factory=list)
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _server: Any = field(default=None, repr=False)
    _server_thread: threading.Thread | None = field(default=None, repr=False)
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def curl(self) -> str:
        """A curl line that asks the local API for a quote."""
        return _curl_line(self.base_url, self.client_key)

    def info(self) -> dict[str, Any]:
        """What a script needs to talk to the stack (also written to .local-stack.json).
        api_url and api_key repeat base_url and client_key under the names the `crowd`
        command reads, so `crowd --config .local-stack.json` talks to this stack."""
        return {
            "base_url": self.base_url,
            "client_key": self.client_key,
            "api_url": self.base_url,
            "api_key": self.client_key,
            "worker_token": self.worker_token,
            "operator_key": self.operator_key,
            "curl": self.curl,
            "moto_endpoint": self.moto_endpoint,
            "environment": self.environment,
        }

    def serve_forever(self) -> None:
        """Serve the API in the calling thread (or wait on the API process) until interrupted."""
        if self._process is not None:
            # In short waits: a signal the kernel hands to another thread (SIGTERM goes to
            # any thread of the process) only runs its handler once this, the main thread,
            # runs Python again, which it never would inside one endless wait.
            while True:
                try:
                    self._process.wait(timeout=_SIGNAL_CHECK_SECONDS)
                    return
                except subprocess.TimeoutExpired:
                    continue
        self._server.server.serve_forever()

    def serve_in_background(self) -> None:
        """Serve the API from a daemon thread (an API process serves by itself)."""
        if self._process is not None:
            return
        self._server_thread = threading.Thread(
            target=self._server.server.serve_forever, name="chalice-local", daemon=True
        )
        self._server_thread.start()

    def stop(self) -> None:
        """Stop the API server, the background threads and moto; remove state files; restore the environment."""
        if self._server_thread is not None:
            self._server.server.shutdown()
            self._server_thread.join(timeout=10)
            self._server_thread = None
        if self._server is not None:
            self._server.server.server_close()
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                LOG.exception("error while stopping the local stack")
        for path in self.state_files:
            path.unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        """Use the stack for the with-block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the stack when the with-block ends."""
        self.stop()


def _default_seed() -> Mapping[str, Any]:
    """A client, a worker and an operator account to try the API with, made by the app under
    test (imported here, once its environment points at this stack); their ids and secrets."""
    accounts = importlib.import_module("chalicelib.handlers.accounts")
    model = importlib.import_module("chalicelib.domain.model")
    p = importlib.import_module("chalicelib.deps").platform()
    client, client_key = accounts.create_account(p, model.CLIENT, "Local client")
    worker, worker_token = accounts.create_account(p, model.WORKER, "Local worker", ["en"])
    operator, operator_key = accounts.create_account(p, model.OPERATOR, "Local operator")
    return {"client_id": client.account_id, "client_key": client_key,
            "worker_id": worker.account_id, "worker_token": worker_token,
            "operator_id": operator.account_id, "operator_key": operator_key}


def start_local_stack(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    project_dir: Path | str = PROJECT_ROOT,
    app_module: str = "app",
    app_name: str = "crowd",
    stage: str = "dev",
    seed: Callable[[], Mapping[str, Any]] | None = _default_seed,
    pump_interval: float = 1.0,
    consumers: int | None = None,
    finalize_interval: float = 5.0,
    instant_step_functions: bool = False,
    state_file: Path | str | None = None,
    ready_file: Path | str | None = None,
    serve: bool = True,
    api_process: bool = False,
) -> LocalStack:
    """Start moto, deploy the stack, wire the app, seed credentials and (if serve) serve the API from a thread.

    consumers: batches of each queue handled at once (None: as many as its event source's
    maximum concurrency says, one if it says none)."""
    project_dir = Path(project_dir).resolve()
    stoppers: list[Callable[[], None]] = []
    env = _Environment()
    stoppers.append(env.restore)
    stack: LocalStack | None = None
    try:
        for name, value in _FAKE_AWS_ENV.items():
            env.set(name, value)
        for name in list(os.environ):
            if name in _UNSET_NAMES or name.startswith(_UNSET_PREFIXES):
                env.unset(name)

        from moto.server import ThreadedMotoServer

        moto_port = _free_port("127.0.0.1")
        # Before the server starts: the interpreter's Lambda client targets localhost:$MOTO_PORT.
        env.set("MOTO_PORT", str(moto_port))
        # One log line per moto HTTP request drowns everything else.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto_server.start()
        stoppers.append(moto_server.stop)
        moto_endpoint = f"http://127.0.0.1:{moto_port}"
        env.set("AWS_ENDPOINT_URL", moto_endpoint)
        # The server shares this process's moto config: put it back on stop so a
        # later mock_aws in the same process starts from the usual defaults.
        from moto.core.config import default_user_config

        saved_sfn_config = copy.deepcopy(default_user_config.get("stepfunctions"))
        stoppers.append(lambda: _restore_sfn_config(default_user_config, saved_sfn_config))
        request = urllib.request.Request(
            f"{moto_endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

        moto_shims.install_all()
        stoppers.append(moto_shims.install_keyed_queries())
        stoppers.append(moto_shims.install_untracked_items())
        stoppers.append(moto_shims.install_listed_moto_modules())
        stoppers.append(moto_shims.install_named_projections())
        stoppers.append(moto_shims.install_cheap_sqs_send())
        if instant_step_functions:
            stoppers.append(moto_shims.make_step_functions_instant())

        import boto3

        session = boto3.session.Session(region_name=REGION)
        outputs = deploy_stack(
            session.client("cloudformation", endpoint_url=moto_endpoint), stack_name_for(app_name, stage), app_name, stage
        )
        for name, value in _chalice_stage_environment(project_dir, stage).items():
            env.set(name, value)
        app_env = app_environment(outputs)
        # As `make deploy` does: the usage plan client keys are registered in.
        from infra.rate_limits import ensure_usage_plan

        app_env["USAGE_PLAN_ID"] = ensure_usage_plan(
            session.client("apigateway", endpoint_url=moto_endpoint), app_name, stage)
        for name, value in app_env.items():
            env.set(name, value)
        # Webhook receivers on this machine (http, 127.0.0.1) are fine here, and only here.
        env.set("WEBHOOK_ALLOW_INSECURE", "true")

        moto_shims.create_stage_functions(
            session.client("lambda", endpoint_url=moto_endpoint),
            session.client("iam", endpoint_url=moto_endpoint),
            app_name,
            stage,
        )
        if str(project_dir) not in sys.path:
            sys.path.insert(0, str(project_dir))
        app = importlib.import_module(app_module)
        stoppers.append(moto_shims.route_lambda_invocations({fn: getattr(app, fn) for fn in STAGE_FUNCTIONS}))

        stop_event = threading.Event()
        pump = SqsPump(
            session.client("sqs", endpoint_url=moto_endpoint),
            {app_env["INGEST_QUEUE_NAME"]: app.ingest_items, app_env["RESULTS_QUEUE_NAME"]: app.count_answers,
             **({app_env["WEBHOOK_QUEUE_NAME"]: app.deliver_webhooks} if hasattr(app, "deliver_webhooks") else {})},
            function_name_prefix=f"{app_name}-{stage}-",
            batch_sizes=sqs_batch_sizes(app.app),
            concurrency=sqs_concurrency(app.app) if consumers is None
            else dict.fromkeys(sqs_batch_sizes(app.app), consumers),
        )
        # Threads per queue, as each queue has its own event source mapping on AWS: as many as
        # the mapping's maximum concurrency (counting answers takes several batches at once).
        threads = [threading.Thread(target=pump.run_forever, args=(stop_event, pump_interval),
                                    kwargs={"queues": [queue]}, name=f"sqs-pump-{queue}-{n}",
                                    daemon=True)
                   for queue in pump.queue_names for n in range(pump.concurrency[queue])]
        finalize = getattr(app, "finalize_due_jobs", None)
        if finalize is not None:
            threads.append(
                threading.Thread(
                    target=_run_periodically,
                    args=(
                        stop_event,
                        finalize_interval,
                        finalize,
                        f"{app_name}-{stage}-finalize_due_jobs",
                        outputs["IngestQueueArn"].split(":")[4],
                    ),
                    name="finalize-due-jobs",
                    daemon=True,
                )
            )
        for thread in threads:
            thread.start()
        # Stoppers unwind last-in first-out: signal the threads, then wait for them.
        stoppers.append(lambda: _join_all(threads))
        stoppers.append(stop_event.set)

        credentials = dict(seed()) if seed is not None else {}

        if api_process:
            process, base_url = _start_api_process(project_dir, stage, host, port, app_module)
            stoppers.append(lambda: _stop_process(process))
            server = None
        else:
            process = None
            server = make_api_server(app.app, project_dir, stage, host, port)
            bound_host, bound_port = server.server.server_address[:2]
            base_url = f"http://{bound_host}:{bound_port}"

        stack = LocalStack(
            base_url=base_url,
            moto_endpoint=moto_endpoint,
            client_key=credentials.get("client_key"),
            worker_token=credentials.get("worker_token"),
            operator_key=credentials.get("operator_key"),
            environment=app_env,
            stack_outputs=outputs,
            app=app,
            _stoppers=stoppers,
            _server=server,
            _process=process,
        )
        info = json.dumps(stack.info(), indent=2) + "\n"
        for path in (state_file, ready_file):
            if path is not None:
                Path(path).write_text(info, encoding="utf-8")
                stack.state_files.append(Path(path))
        if serve:
            stack.serve_in_background()
        return stack
    except BaseException:
        if stack is not None:
            stack.stop()
        else:
            while stoppers:
                try:
                    stoppers.pop()()
                except Exception:
                    LOG.exception("error while cleaning up a failed start")
        raise


def _restore_sfn_config(config: Any, saved: Any) -> None:
    """Put moto's stepfunctions config back as it was before the local stack."""
    if saved is None:
        config.pop("stepfunctions", None)
    else:
        config["stepfunctions"] = saved


def _join_all(threads: list[threading.Thread], timeout: float = 10.0) -> None:
    """Wait for each thread to finish (bounded)."""
    for thread in threads:
        thread.join(timeout=timeout)


def _start_api_process(project_dir: Path, stage: str, host: str, port: int,
                       app_module: str) -> tuple[subprocess.Popen, str]:
    """Start infra.api_server as a child with this environment; return it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.api_server", "--host", host, "--port", str(port),
         "--stage", stage, "--project-dir", str(project_dir), "--app-module", app_module],
        cwd=str(project_dir), env=dict(os.environ), stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("LISTENING "):
        _stop_process(process)
        raise RuntimeError(f"the API process did not start: {line!r}")
    # Pass its output (the app's log lines, errors included) on to this process's, and keep
    # draining it so a chatty child never blocks on a full pipe.
    threading.Thread(target=_forward_lines, args=(process.stdout, sys.stdout), daemon=True).start()
    return process, line.split(" ", 1)[1].strip()


def _forward_lines(source: Any, sink: Any) -> None:
    """Write each line of source to sink as it comes, until source ends."""
    for line in source:
        try:
            sink.write(line)
            sink.flush()
        except (OSError, ValueError):  # the sink was closed (stopping): keep draining
            pass


def _stop_process(process: subprocess.Popen) -> None:
    """Terminate the API process and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_periodically(
    stop_event: threading.Event,
    interval: float,
    handler: Callable[[dict[str, Any], Any], Any],
    function_name: str,
    account_id: str,
) -> None:
    """Call a scheduled handler every interval seconds until stop_event is set."""
    while not stop_event.wait(interval):
        try:
            handler(scheduled_event(function_name, account_id), lambda_context(function_name, REGION, account_id=account_id))
        except Exception:
            LOG.exception("%s failed", function_name)


@contextmanager
def local_stack(port: int = 0, host: str = "127.0.0.1", **kwargs: Any) -> Iterator[LocalStack]:
    """The local stack, serving from a background thread, for the duration of the with-block."""
    stack = start_local_stack(port, host, **kwargs)
    try:
        yield stack
    finally:
        stack.stop()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C so serve_forever returns and cleanup runs."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: start the stack and serve the API in the main thread until Ctrl-C/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m infra.local_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="API port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--project-dir", default=str(PROJECT_ROOT), help="directory holding app.py and .chalice/")
    parser.add_argument("--ready-file", default=None, help="also write the connection details (JSON) here when ready")
    parser.add_argument("--state-file", default=None, help=f"where `make demo` finds the stack (default: <project>/{STATE_FILE_NAME})")
    parser.add_argument("--instant-retries", action="store_true", help="no Retry back-off / Wait in Step Functions")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # One log line per moto HTTP request drowns the app's own logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("pynamodb").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # Also when started from a shell that ignores SIGINT (a background job): Ctrl-C must stop it.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)

    project_dir = Path(args.project_dir).resolve()
    stack = start_local_stack(
        args.port,
        args.host,
        project_dir=project_dir,
        state_file=Path(args.state_file) if args.state_file else project_dir / STATE_FILE_NAME,
        ready_file=args.ready_file,
        instant_step_functions=args.instant_retries,
        serve=False,
        api_process=True,
    )
    try:
        print(f"API:          {stack.base_url}")
        print(f"Client key:   {stack.client_key}")
        print(f"Worker token: {stack.worker_token}")
        print(f"Operator key: {stack.operator_key}")
        print(f"moto:         {stack.moto_endpoint}")
        print(f"Try:          {stack.curl}")
        print(f"READY {stack.base_url}", flush=True)
        stack.serve_forever()
    except KeyboardInterrupt:
        print("stopping local stack", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
