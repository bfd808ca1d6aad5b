"""The HTTP sender of webhook deliveries: a POST to a receiver that resolves to public
addresses only (or to this machine's loopback on a local stack), redirects not followed."""
from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer (recorded as its status), never followed: the URL
    was checked, where it points to was not."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float,
              allow_loopback: bool = False) -> tuple[int | None, str | None]:
    """POST body; (status code, None) for any HTTP answer, (None, reason) when none came.

    The host must resolve now (a name that pointed elsewhere when it was registered is
    checked again at every send) only to public addresses, or with allow_loopback (local
    stacks, tests) only to this machine's loopback; plain http only to the loopback.
    """
    parsed = urllib.parse.urlsplit(url)
    refused = _refused_address(parsed.hostname or "", allow_loopback, parsed.scheme != "https")
    if refused:
        return None, refused
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, None
    except Exception as error:  # noqa: BLE001 (whatever the receiver did is this attempt's error)
        reason = getattr(error, "reason", error)
        return None, f"{type(error).__name__}: {reason}"[:300]


def _refused_address(host: str, allow_loopback: bool, plain_http: bool) -> str | None:
    """Why host may not be called, or None: it must resolve, and only to global addresses,
    or (allow_loopback) only to loopback ones; plain http only to loopback ones."""
    try:
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                     for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError, ValueError) as error:
        return f"the host does not resolve: {type(error).__name__}"
    if allow_loopback and all(address.is_loopback for address in addresses):
        return None
    if not all(address.is_global for address in addresses):
        return "the host resolves to a private address"
    if plain_http:
        return "plain http is sent only to this machine's loopback, on a local stack"
    return None


def sender(allow_loopback: bool) -> Any:
    """post_json with the address rule of the stage."""
    return lambda url, body, headers, timeout: post_json(url, body, headers, timeout,
                                                         allow_loopback)
