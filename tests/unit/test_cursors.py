"""Page cursors are sealed: unreadable, unforgeable, and opened only by the secret that made them."""
import base64

import pytest

from chalicelib.adapters.cursors import CursorCodec

KEY = {"client_id": {"S": "cli_0123456789abcdef"}, "created_at": {"S": "2026-12-01T08:06:54Z"},
       "job_id": {"S": "job_fedcba9876543210"}}


def _bytes(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def test_a_sealed_key_opens_again_and_shows_nothing_of_itself():
    codec = CursorCodec(b"s" * 32)
    cursor = codec.seal(KEY)
    assert codec.open(cursor) == KEY
    raw = _bytes(cursor)
    # (random bytes hold any short string now and then: only names of 3 or more characters)
    for text in ("client_id", "cli_0123456789abcdef", "job_fedcba", "created_at", "2026-12",
                 '{"S":', '"job_id"'):
        assert text.encode() not in raw
        assert len(text) < 6 or text not in cursor
    # a fresh nonce each time: the same key never gives the same cursor
    assert codec.seal(KEY) != cursor
    assert "=" not in cursor and cursor.isascii()


def test_every_altered_byte_and_every_other_secret_is_refused():
    codec = CursorCodec(b"s" * 32)
    cursor = codec.seal(KEY)
    raw = _bytes(cursor)
    for index in range(len(raw)):
        flipped = raw[:index] + bytes([raw[index] ^ 1]) + raw[index + 1:]
        assert codec.open(base64.urlsafe_b64encode(flipped).decode()) is None, index
    assert CursorCodec(b"t" * 32).open(cursor) is None
    plain = base64.urlsafe_b64encode(b'{"job_id": {"S": "job_x"}}').decode()
    for bad in (plain, cursor[:-3], cursor[:20], "", "%%%", "é" * 40, "A" * 5000, cursor + "x",
                cursor[:10] + "%" + cursor[10:], cursor + "==", " " + cursor):
        assert codec.open(bad) is None, bad


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 500])
def test_keys_of_any_length_round_trip(size):
    codec = CursorCodec(b"k" * 32)
    key = {"item_id": {"S": "x" * size}}
    assert codec.open(codec.seal(key)) == key
