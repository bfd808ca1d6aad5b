"""Serve the Chalice app with Chalice's local dev server (in this process or as a child).

`python -m infra.api_server --port 0` prints `LISTENING <url>` once bound. The local
stack runs the API in a child process so that the API and moto (with the event-driven
functions) each get a core, as API Gateway and the queue consumers would on AWS.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Connections the API server's kernel queue holds before it accepts them.
LISTEN_BACKLOG = 256


def make_api_server(app: Any, project_dir: Path, stage: str, host: str, port: int) -> Any:
    """Chalice's LocalDevServer for app with the stage's config (port 0 = any free port)."""
    from chalice.config import Config
    from chalice.deploy.validate import validate_routes
    from chalice.local import create_local_server

    config_path = project_dir / ".chalice" / "config.json"
    config_from_disk = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    config = Config(
        chalice_stage=stage,
        user_provided_params={"project_dir": str(project_dir), "chalice_app": app},
        config_from_disk=config_from_disk,
    )
    validate_routes(app.routes)
    from chalice.local import (
        ChaliceRequestHandler, CustomLocalChalice, LocalDevServer, ThreadedHTTPServer,
    )

    # Its responses go out in small writes on kept-alive HTTP/1.1 connections; with Nagle's
    # algorithm on, each waits for the client's delayed ACK (about 40 ms a request).
    ChaliceRequestHandler.disable_nagle_algorithm = True
    # socketserver listens with a backlog of 5: with dozens of clients connecting at once the
    # kernel drops the rest, whose connects then wait 1, 3, 7... seconds to be tried again.
    ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    # Chalice makes the app a CustomLocalChalice the first time it serves it; serving that
    # app again (a second server in the same process) must not make the class its own base.
    server = LocalDevServer(app, config, host, port) if isinstance(app, CustomLocalChalice) \
        else create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(_handler_class(), app_object=app,
                                                          config=config)
    return server


def _handler_class() -> type:
    """Chalice's request handler with a gateway that answers an unknown route as the deployed
    stage does (its gateway response): 404 in the error shape, where Chalice answers with
    API Gateway's default `403 {"message": "Missing Authentication Token"}`. A known route
    with a method it lacks reaches the app, whose 405 already has the error shape."""
    from http.server import BaseHTTPRequestHandler

    from chalice.local import ChaliceRequestHandler, LocalGateway, LocalGatewayException

    from infra.gateway_responses import NOT_FOUND_BODY

    class RouteNotFound(LocalGatewayException):
        CODE = 404

    class Gateway(LocalGateway):
        def _generate_lambda_event(self, method: str, path: str, headers: Any,
                                   body: bytes | None) -> Any:
            try:
                return super()._generate_lambda_event(method, path, headers, body)
            except ValueError:  # Chalice's "no route matches"
                raise RouteNotFound({"Content-Type": "application/json"},
                                    json.dumps(NOT_FOUND_BODY).encode("utf-8")) from None

    class Handler(ChaliceRequestHandler):
        def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any,
                     config: Any) -> None:
            self.local_gateway = Gateway(app_object, config)
            BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    return Handler


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; the environment must already point at the stack."""
    parser = argparse.ArgumentParser(prog="python -m infra.api_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--project-dir", default=str(PROJECT_ROOT))
    parser.add_argument("--app-module", default="app")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    signal.signal(signal.SIGTERM, _stop)
    project_dir = Path(args.project_dir).resolve()
    sys.path.insert(0, str(project_dir))
    app = importlib.import_module(args.app_module).app
    server = make_api_server(app, project_dir, args.stage, args.host, args.port)
    host, port = server.server.server_address[:2]
    print(f"LISTENING http://{host}:{port}", flush=True)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
