"""The local API server queues as many connections as the load bench opens at once, and one
process may serve the same app more than once (a test module's server after another's)."""
import socket

from chalice import Chalice

from infra.api_server import make_api_server


def test_sixty_four_clients_connecting_at_once_are_all_queued_without_a_retry(tmp_path):
    # GIVEN the local API server listening, but not yet accepting
    app = Chalice(app_name="backlog")

    @app.route("/")
    def index():
        return {}

    server = make_api_server(app, tmp_path, "dev", "127.0.0.1", 0)
    host, port = server.server.server_address[:2]
    clients = []
    try:
        # WHEN 64 clients connect at once
        for _ in range(64):
            client = socket.create_connection((host, port), timeout=0.5)
            clients.append(client)
        # THEN every connection was queued at once (a dropped one waits a second to retry)
        assert len(clients) == 64
    finally:
        for client in clients:
            client.close()
        server.server.server_close()


def test_the_same_app_is_served_again_by_a_second_server(tmp_path):
    # GIVEN an app one server has served and closed
    app = Chalice(app_name="twice")

    @app.route("/")
    def index():
        return {"n": 1}

    first = make_api_server(app, tmp_path, "dev", "127.0.0.1", 0)
    first.server.server_close()
    # WHEN a second server is made for it
    second = make_api_server(app, tmp_path, "dev", "127.0.0.1", 0)
    # THEN it listens on a port of its own
    try:
        assert second.server.server_address[1] > 0
    finally:
        second.server.server_close()
