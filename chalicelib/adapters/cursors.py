"""Page cursors: DynamoDB's LastEvaluatedKey, encrypted and authenticated, so a client can
hand one back but can neither read the key layout in it nor forge one.

A cursor is URL-safe base64 (no padding) of `nonce (16 bytes) | ciphertext | tag (16 bytes)`:
the key's JSON XORed with a keystream of HMAC-SHA256(encryption key, nonce | block number)
blocks, then a tag of HMAC-SHA256(authentication key, nonce | ciphertext) (encrypt-then-MAC;
the standard library has no AEAD). Both keys are derived from the stage's cursor secret:
32 random bytes kept in the stage's `catalog` table (kind `secret`, name `cursor`), written by
the first container that needs it under a condition, so every container of the stage (and a
local stack's API and consumers) reads the same one. No secret is in the repository or in
config.json; deleting that item makes every cursor handed out so far invalid (`400`).
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.mturk import PageTokens
from chalicelib.domain.result_rows import LEGACY, Position
from chalicelib.errors import InvalidRequest

NONCE_BYTES = 16
TAG_BYTES = 16
SECRET_BYTES = 32
MAX_CURSOR_CHARS = 2048
SECRET_KIND, SECRET_NAME = "secret", "cursor"
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


class CursorCodec:
    """Seals a key into a cursor and opens only cursors sealed with the same secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._encrypt = hmac.new(secret, b"crowd cursor encryption", hashlib.sha256).digest()
        self._authenticate = hmac.new(secret, b"crowd cursor authentication",
                                      hashlib.sha256).digest()

    def derived_key(self, purpose: str) -> bytes:
        """A key for another use of the stage's secret (e.g. the MTurk API's NextTokens),
        independent of the cursor keys."""
        return hmac.new(self._secret, f"crowd {purpose}".encode("utf-8"),
                        hashlib.sha256).digest()

    def seal(self, key: Mapping[str, Any]) -> str:
        """The cursor of key: a fresh nonce each time, so equal keys give unequal cursors."""
        plain = json.dumps(key, sort_keys=True, separators=(",", ":")).encode("utf-8")
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + _xor(plain, self._keystream(nonce, len(plain)))
        token = sealed + self._tag(sealed)
        return base64.urlsafe_b64encode(token).decode("ascii").rstrip("=")

    def open(self, cursor: str) -> Any:
        """The key inside cursor; None unless it is one this secret sealed, unaltered."""
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS or \
                not _URL_SAFE.fullmatch(cursor):
            return None
        try:
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            return None
        if len(token) < NONCE_BYTES + TAG_BYTES:
            return None
        sealed, tag = token[:-TAG_BYTES], token[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(sealed)):
            return None
        nonce, cipher = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return json.loads(_xor(cipher, self._keystream(nonce, len(cipher))))
        except ValueError:
            return None

    def _keystream(self, nonce: bytes, length: int) -> bytes:
        blocks = (hmac.new(self._encrypt, nonce + counter.to_bytes(4, "big"),
                           hashlib.sha256).digest() for counter in range(-(-length // 32)))
        return b"".join(blocks)[:length]

    def _tag(self, sealed: bytes) -> bytes:
        return hmac.new(self._authenticate, sealed, hashlib.sha256).digest()[:TAG_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream))


@functools.cache
def codec() -> CursorCodec:
    """The stage's codec, its secret read (or first written) once per container. Two first
    calls at once both end with the stage's one secret: it is written under a condition."""
    return CursorCodec(_stage_secret())


def _stage_secret() -> bytes:
    # pynamodb and the models: loaded at the first page, so the codec imports cheaply.
    from pynamodb.exceptions import PutError

    from chalicelib.adapters.models import CatalogModel

    try:
        return bytes.fromhex(CatalogModel.get(SECRET_KIND, SECRET_NAME,
                                              consistent_read=True).body["hex"])
    except CatalogModel.DoesNotExist:
        pass
    fresh = secrets.token_bytes(SECRET_BYTES)
    try:
        CatalogModel(SECRET_KIND, SECRET_NAME, body={"hex": fresh.hex()},
                     created_at=time.time()).save(CatalogModel.name.does_not_exist())
        return fresh
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
    # Another container wrote it first: use theirs.
    return bytes.fromhex(CatalogModel.get(SECRET_KIND, SECRET_NAME,
                                          consistent_read=True).body["hex"])


def mturk_page_tokens() -> PageTokens:
    """NextToken sealing of the MTurk-compatible API's lists: a key derived from the stage's
    cursor secret, so every container accepts the tokens any of them handed out."""
    return PageTokens(codec().derived_key("mturk page tokens"))


def reset() -> None:
    """Forget the container's codec (tests switch stacks between runs)."""
    codec.cache_clear()


def encode_cursor(key: Mapping[str, Any] | None, sealer: CursorCodec | None = None
                  ) -> str | None:
    """The opaque cursor of DynamoDB's LastEvaluatedKey (None on the last page), sealed with
    the stage's codec unless another is given."""
    return (sealer or codec()).seal(key) if key else None


def decode_cursor(cursor: str | None, key: Mapping[str, str], fixed: Mapping[str, str],
                  field: str = "cursor", sealer: CursorCodec | None = None,
                  optional: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """LastEvaluatedKey from a cursor; InvalidRequest unless we sealed it, for this listing.

    key maps each key attribute to its type ("S" or "N"); fixed holds the values the
    listing's partition key must have (another listing's or account's cursor is refused);
    the names in optional may be missing.
    """
    if not cursor:
        return None
    start = (sealer or codec()).open(cursor)
    valid = isinstance(start, dict) and set(key) - optional <= set(start) <= set(key) and all(
        isinstance(value, dict) and list(value) == [key[name]]
        and isinstance(value[key[name]], str) and value[key[name]] != ""
        for name, value in start.items())
    if not valid or any(start[name][key[name]] != value for name, value in fixed.items()):
        raise InvalidRequest("'cursor' is not valid: pass back a next_cursor as it came",
                             field=field)
    return start


# A page of a job's result rows: which bucket it resumes in, after which item id.
RESULT_POSITION = {"job_id": "S", "bucket": "N", "item_id": "S"}


def encode_position(job_id: str, position: Position | None, sealer: CursorCodec | None = None
                    ) -> str | None:
    """The cursor of a position in a job's result rows (None at the end)."""
    if position is None:
        return None
    key = {"job_id": {"S": job_id}, "bucket": {"N": str(position.bucket)}}
    if position.after is not None:
        key["item_id"] = {"S": position.after}
    return encode_cursor(key, sealer)


def decode_position(cursor: str | None, job_id: str, buckets: int,
                    sealer: CursorCodec | None = None) -> Position | None:
    """The position a result cursor names; InvalidRequest unless it is one of this job's."""
    start = decode_cursor(cursor, RESULT_POSITION, {"job_id": job_id}, sealer=sealer,
                          optional=frozenset({"item_id"}))
    if start is None:
        return None
    text = start["bucket"]["N"]
    bucket = int(text) if re.fullmatch(r"-?[0-9]{1,9}", text) else buckets
    if not LEGACY <= bucket < buckets:
        raise InvalidRequest("'cursor' is not valid: pass back a next_cursor as it came",
                             field="cursor")
    after = start.get("item_id")
    return Position(bucket, None if after is None else after["S"])
