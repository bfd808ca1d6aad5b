"""A round's categorical votes as compact integer columns, shard by shard, and their merge.

LoadAnswers writes each shard's votes (votes/NNNNN.json) as three small tables (the shard's
item ids, worker ids and labels, each in order of first appearance) and three columns of
codes into them, one entry per answer, base64 in the JSON object, each code in the fewest
bytes its table's size needs (1, 2 or 4): about 7 bytes per answer at 10 answers an item
instead of three JSON strings. FitModel merges the shards into one encoded round
(categorical.Encoded) without a Python string per answer: a shard's item codes are offset by
the items before it (an item is in exactly one shard), its worker and label codes go through
the round's tables. Merged in shard order, the codes are the ones categorical.encode gives
the same answers as lists of strings, so the fit is the same.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.domain.aggregation.categorical import Encoded

# Codes in memory; little-endian whatever the machine, as they are stored.
CODE_DTYPE = np.dtype("<i4")


def stored_dtype(size: int) -> np.dtype:
    """How a column of codes into a table of size values is stored: the narrowest that fits."""
    if size <= 1 << 8:
        return np.dtype("<u1")
    if size <= 1 << 16:
        return np.dtype("<u2")
    return CODE_DTYPE


def _table(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(distinct values in order of first appearance, each value's code into them)."""
    index: dict[str, int] = {}
    for value in values:
        index.setdefault(value, len(index))
    codes = np.fromiter(map(index.__getitem__, values), dtype=CODE_DTYPE, count=len(values))
    return list(index), codes


def _b64(codes: np.ndarray, size: int) -> str:
    return base64.b64encode(codes.astype(stored_dtype(size)).tobytes()).decode("ascii")


def _codes(text: str, count: int, size: int, name: str) -> np.ndarray:
    """A base64 column of count codes, each below size; ValueError otherwise."""
    codes = np.frombuffer(base64.b64decode(text), dtype=stored_dtype(size)).astype(CODE_DTYPE)
    if len(codes) != count:
        raise ValueError(f"vote column {name} holds {len(codes)} codes for {count} answers")
    if count and (int(codes.min()) < 0 or int(codes.max()) >= size):
        raise ValueError(f"vote column {name} has a code outside its table of {size}")
    return codes


def shard_columns(items: Sequence[str], workers: Sequence[str], labels: Sequence[str],
                  gold: Mapping[str, str]) -> dict[str, Any]:
    """One shard's votes (one entry per answer, items grouped) as a JSON-ready object."""
    item_table, item_codes = _table(items)
    worker_table, worker_codes = _table(workers)
    label_table, label_codes = _table(labels)
    return {"answers": len(item_codes), "item_table": item_table, "worker_table": worker_table,
            "label_table": label_table, "item_codes": _b64(item_codes, len(item_table)),
            "worker_codes": _b64(worker_codes, len(worker_table)),
            "label_codes": _b64(label_codes, len(label_table)),
            "gold": dict(gold)}


@dataclass(frozen=True)
class ShardVotes:
    """One shard's votes: tables in order of first appearance and int32 codes into them."""

    items: list[str]
    workers: list[str]
    labels: list[str]
    item_codes: np.ndarray
    worker_codes: np.ndarray
    label_codes: np.ndarray
    gold: dict[str, str]


def read_shard(votes: Mapping[str, Any]) -> ShardVotes:
    """A votes object as written by shard_columns, or as lists of strings per answer
    (items, workers, labels), the form written before the columns were compact."""
    if "item_codes" not in votes:
        items, item_codes = _table(votes["items"])
        workers, worker_codes = _table(votes["workers"])
        labels, label_codes = _table(votes["labels"])
        return ShardVotes(items, workers, labels, item_codes, worker_codes, label_codes,
                          dict(votes.get("gold", {})))
    count = int(votes["answers"])
    return ShardVotes(
        list(votes["item_table"]), list(votes["worker_table"]), list(votes["label_table"]),
        _codes(votes["item_codes"], count, len(votes["item_table"]), "item_codes"),
        _codes(votes["worker_codes"], count, len(votes["worker_table"]), "worker_codes"),
        _codes(votes["label_codes"], count, len(votes["label_table"]), "label_codes"),
        dict(votes.get("gold", {})))


class RoundVotes:
    """The shards of a round merged, in shard order, into the codes of one encoded round."""

    def __init__(self, label_order: Sequence[str] | None = None) -> None:
        self.items: list[str] = []
        self._workers: dict[str, int] = {}
        self._classes: dict[str, int] = {label: rank for rank, label
                                         in enumerate(dict.fromkeys(label_order or ()))}
        self._columns: tuple[list[np.ndarray], ...] = ([], [], [])  # item, worker, label
        self._gold: list[tuple[int, str]] = []
        self.spans: list[tuple[int, int]] = []  # each shard's [start, stop) of item codes

    @staticmethod
    def _recode(table: Sequence[str], index: dict[str, int]) -> np.ndarray:
        """Round-wide code of each entry of a shard's table, adding unseen values in order."""
        return np.fromiter((index.setdefault(value, len(index)) for value in table),
                           dtype=CODE_DTYPE, count=len(table))

    def add(self, shard: ShardVotes) -> None:
        """Append the next shard's answers; its items must be in no earlier shard."""
        start = len(self.items)
        self.items.extend(shard.items)
        self.spans.append((start, len(self.items)))
        workers = self._recode(shard.workers, self._workers)
        labels = self._recode(shard.labels, self._classes)
        for column, codes in zip(self._columns, ((shard.item_codes + start).astype(CODE_DTYPE),
                                                 workers[shard.worker_codes],
                                                 labels[shard.label_codes])):
            column.append(codes)
        local = {item: start + rank for rank, item in enumerate(shard.items)}
        # A gold item nobody answered is not in the fit (as in categorical.fit).
        self._gold.extend((local[item], label) for item, label in shard.gold.items()
                          if item in local)

    def encoded(self) -> tuple[Encoded, np.ndarray, np.ndarray]:
        """(the round as categorical.Encoded, gold item codes, their gold class codes).

        A gold label no answer gave becomes one more class after every answered one, as
        categorical.fit does; the shards' columns are released as they are joined.
        """
        for _, label in self._gold:
            self._classes.setdefault(label, len(self._classes))
        columns = []
        for parts in self._columns:
            columns.append(np.concatenate(parts) if parts else np.zeros(0, dtype=CODE_DTYPE))
            parts.clear()
        gold_items = np.fromiter((item for item, _ in self._gold), dtype=np.int64,
                                 count=len(self._gold))
        gold_classes = np.fromiter((self._classes[label] for _, label in self._gold),
                                   dtype=np.int64, count=len(self._gold))
        return (Encoded(columns[0], columns[1], columns[2], self.items, list(self._workers),
                        list(self._classes)), gold_items, gold_classes)
