"""The MTurk-compatible API's quals operations (merged into chalicelib.handlers.mturk)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.model import Principal
from chalicelib.handlers.platform import Platform

OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {}
