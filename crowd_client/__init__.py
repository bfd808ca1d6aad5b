"""The client side of the marketplace: a typed Python `Client` for scripts and notebooks, and
the `crowd` command line built on it. Not part of the Lambda package (it lives outside
chalicelib/ and app.py)."""
from crowd_client.client import ApiError, Client, WorkerClient, verify_signature

__all__ = ["ApiError", "Client", "WorkerClient", "verify_signature"]
