"""The one place that builds boto3 clients: lazily, once per Lambda container."""
from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str, region: str) -> Any:
    """A cached boto3 client; AWS_ENDPOINT_URL (the local stack) is honoured by botocore."""
    key = f"{service}:{region}"
    if key not in _clients:
        with _lock:
            if key not in _clients:
                # boto3 (the heaviest import here): loaded with the first client, not the app.
                import boto3
                from botocore.config import Config

                # Presigned S3 links must use SigV4: SigV2 fails with KMS and in newer regions.
                config = Config(signature_version="s3v4") if service == "s3" else None
                _clients[key] = boto3.session.Session().client(service, region_name=region,
                                                               config=config)
    return _clients[key]


def reset() -> None:
    """Forget every client (tests switch endpoints between runs)."""
    _clients.clear()
