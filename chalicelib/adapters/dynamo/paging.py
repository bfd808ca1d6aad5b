"""Pages of an index ordered by time, newest first, behind opaque cursors."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.adapters.cursors import decode_cursor, encode_cursor


def newest_first(index: Any, owner: str, owner_key: str, key: Mapping[str, str], limit: int,
                 cursor: str | None, convert: Callable[[Any], Any]) -> tuple[list[Any], str | None]:
    """A page of an index ordered by time, newest first, for one owner (client or account);
    another owner's cursor is refused."""
    start = decode_cursor(cursor, key, {owner_key: owner})
    result = index.query(owner, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    rows = [convert(r) for r in result]
    return rows, encode_cursor(result.last_evaluated_key)
