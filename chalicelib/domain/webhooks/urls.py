"""Which URLs an endpoint may have: we POST to them from inside AWS, so nothing private,
link-local or metadata is allowed (the sender checks the resolved address again)."""
from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from chalicelib.domain.webhooks.types import WebhookConfig
from chalicelib.errors import InvalidRequest

MAX_URL_LENGTH = 2048


def check_url(url: Any, config: WebhookConfig, field_name: str = "url") -> str:
    """An endpoint URL we will POST to: https with a public host name or address; with
    allow_insecure (local stacks, tests) also http or https to this machine's loopback
    (127.0.0.1, ::1, localhost), and still nothing private, link-local or metadata."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"'{field_name}' must be a URL of at most {MAX_URL_LENGTH} "
                             "characters", field=field_name)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise InvalidRequest(f"'{field_name}' must be an https URL with a host",
                             field=field_name, code="invalid_url")
    if parsed.username or parsed.password:
        raise InvalidRequest(f"'{field_name}' must not carry credentials", field=field_name,
                             code="invalid_url")
    host = parsed.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if config.allow_insecure and (host == "localhost" or (address is not None
                                                          and address.is_loopback)):
        return url
    local = " (or http to 127.0.0.1 here)" if config.allow_insecure else ""
    if parsed.scheme != "https":
        raise InvalidRequest(f"'{field_name}' must be an https URL{local}", field=field_name,
                             code="invalid_url")
    if host == "localhost" or host.endswith(".localhost") or \
            (address is not None and not address.is_global):
        raise InvalidRequest(f"'{field_name}' must be a public address{local}",
                             field=field_name, code="invalid_url")
    return url
