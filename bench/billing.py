"""DynamoDB's on-demand billing arithmetic: item sizes, and the write and read request units a
call consumes on its table and on the table's indexes.

The rules, as DynamoDB bills them:

- Item size: for every attribute, the UTF-8 length of its name plus the size of its value.
  A string is its UTF-8 length; binary its length in bytes; a number about 1 byte per two
  significant digits plus 1 (plus 1 more if negative); a boolean or null 1 byte; a list or
  map 3 bytes plus, per element, 1 byte plus the element (a map element also its name's
  UTF-8 length); a set the sum of its elements.
- Writes (PutItem, UpdateItem, DeleteItem, and each put or delete of a BatchWriteItem): one
  unit per started 1 KB of the larger of the item's size before and after, at least one
  (a write whose condition fails still pays, on the item as it stands). Inside
  TransactWriteItems every action costs twice that; a ConditionCheck counts as a write of
  the item checked.
- Indexes: a write that puts an item into an index, or changes what an index holds of it,
  adds index writes, each one unit per started 1 KB of the index entry (the index and table
  keys plus the projected attributes: all of them, the INCLUDE list, or none for KEYS_ONLY).
  Entering the index is one write, leaving it one, changing the index's key values two (a
  delete and a put), changing only projected attributes one; an item in no index before or
  after, or whose entry is unchanged, costs the index nothing. Index writes are not doubled
  inside a transaction (they are propagated like any other write).
- Reads: one unit per started 4 KB strongly consistent, half of that eventually consistent,
  at least one (half) unit per request. GetItem, and each item of BatchGetItem, is rounded
  on its own; Query and Scan add up the sizes of every item they read (before any filter,
  whatever the projection) and round once; TransactGetItems costs twice a strong read per
  item. A query on an index reads the index entries, and is always eventually consistent.
"""
from __future__ import annotations

import base64
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
CONTAINER_OVERHEAD = 3
ELEMENT_OVERHEAD = 1

Item = Mapping[str, Mapping[str, Any]]  # an item in DynamoDB's typed form: {"name": {"S": "x"}}


def number_size(text: str) -> int:
    """Bytes of a number: 1 per two significant digits (leading and trailing zeros do not
    count), plus 1, plus 1 if negative."""
    value = Decimal(text)
    digits = value.normalize().as_tuple().digits if value else (0,)
    return math.ceil(len(digits) / 2) + 1 + (1 if value < 0 else 0)


def _binary_size(value: bytes | bytearray | str) -> int:
    """A binary value's bytes; a string is the base64 form the wire carries."""
    if isinstance(value, str):
        return len(base64.b64decode(value))
    return len(value)


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed attribute value."""
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return _binary_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in raw)
    if kind == "NS":
        return sum(number_size(n) for n in raw)
    if kind == "BS":
        return sum(_binary_size(b) for b in raw)
    if kind == "L":
        return CONTAINER_OVERHEAD + sum(ELEMENT_OVERHEAD + value_size(v) for v in raw)
    if kind == "M":
        return CONTAINER_OVERHEAD + sum(ELEMENT_OVERHEAD + len(k.encode("utf-8")) + value_size(v)
                                        for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item | None) -> int:
    """Bytes of an item (0 for no item): each attribute's name plus its value."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """Write units of one write of size bytes: per started 1 KB, at least one."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """Read units of one read of size bytes: per started 4 KB (half eventually consistent),
    at least one (half)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class Index:
    """A secondary index: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    include: tuple[str, ...] = ()

    def entry(self, item: Item | None, table_keys: Sequence[str]) -> dict[str, Any] | None:
        """The index's entry for item, or None if the item lacks one of its key attributes."""
        if not item or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = set(self.keys) | set(table_keys) | set(self.include)
        return {name: value for name, value in item.items() if name in kept}


@dataclass(frozen=True)
class Table:
    """A table's key attributes and secondary indexes, as DescribeTable tells them."""

    name: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> "Table":
        """From DescribeTable's "Table"."""
        indexes = []
        for index in (*table.get("GlobalSecondaryIndexes", ()),
                      *table.get("LocalSecondaryIndexes", ())):
            projection = index.get("Projection", {})
            indexes.append(Index(index["IndexName"],
                                 tuple(k["AttributeName"] for k in index["KeySchema"]),
                                 projection.get("ProjectionType", "ALL"),
                                 tuple(projection.get("NonKeyAttributes", ()))))
        return cls(table["TableName"], tuple(k["AttributeName"] for k in table["KeySchema"]),
                   tuple(indexes))

    def key_of(self, item: Item) -> dict[str, Any]:
        """The primary key of an item."""
        return {name: item[name] for name in self.keys}


@dataclass(frozen=True)
class Charge:
    """Units one call consumed on one table or index, for one purpose."""

    purpose: str
    table: str
    index: str | None
    write_units: float = 0.0
    read_units: float = 0.0

    @property
    def target(self) -> str:
        """"table" or "table/index"."""
        return self.table if self.index is None else f"{self.table}/{self.index}"


@dataclass(frozen=True)
class ItemWrite:
    """One item a write call touched: the item before and after the call (None: absent).
    condition_only marks a transaction's ConditionCheck."""

    table: str
    before: Item | None
    after: Item | None
    condition_only: bool = False


@dataclass(frozen=True)
class ItemRead:
    """What one read call read: the sizes of the items (or index entries) it read, and how."""

    table: str
    index: str | None
    sizes: tuple[int, ...]
    consistent: bool
    per_item: bool  # GetItem, BatchGetItem: each item rounded on its own; Query, Scan: summed


@dataclass(frozen=True)
class RecordedCall:
    """One DynamoDB call: its operation, what it was made for, and what it wrote or read."""

    operation: str
    purpose: str
    writes: tuple[ItemWrite, ...] = ()
    reads: tuple[ItemRead, ...] = ()
    site: str = ""
    failed: bool = False

    @property
    def transactional(self) -> bool:
        """TransactWriteItems or TransactGetItems: every table unit counts twice."""
        return self.operation.startswith("Transact")


def index_write_units(index: Index, table_keys: Sequence[str], before: Item | None,
                      after: Item | None) -> int:
    """Write units a change of one item costs one index (see the module's rules)."""
    old, new = index.entry(before, table_keys), index.entry(after, table_keys)
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(item_size(new))
    if new is None:
        return write_units(item_size(old))
    if any(old[key] != new[key] for key in index.keys):
        return write_units(item_size(old)) + write_units(item_size(new))
    if old != new:
        return write_units(max(item_size(old), item_size(new)))
    return 0


def charges(call: RecordedCall, tables: Mapping[str, Table]) -> list[Charge]:
    """The units one recorded call consumed, per table and index."""
    factor = 2 if call.transactional else 1
    out: list[Charge] = []
    for write in call.writes:
        size = max(item_size(write.before), item_size(write.after))
        out.append(Charge(call.purpose, write.table, None, write_units=factor * write_units(size)))
        if write.condition_only:
            continue
        table = tables[write.table]
        for index in table.indexes:
            units = index_write_units(index, table.keys, write.before, write.after)
            if units:
                out.append(Charge(call.purpose, write.table, index.name, write_units=units))
    for read in call.reads:
        if read.per_item:
            read_cost = sum(read_units(size, read.consistent) for size in read.sizes)
        else:
            read_cost = read_units(sum(read.sizes), read.consistent)
        out.append(Charge(call.purpose, read.table, read.index, read_units=factor * read_cost))
    return out


def _rows() -> defaultdict[Any, list[float]]:
    """[write units, read units, calls] per key, from zero."""
    return defaultdict(lambda: [0.0, 0.0, 0])


@dataclass
class Totals:
    """Units summed by purpose, by table or index, and by (purpose, site, operation); the
    bytes billed for writes, by table."""

    by_purpose: dict[str, list[float]] = field(default_factory=_rows)
    by_target: dict[str, list[float]] = field(default_factory=_rows)
    by_site: dict[tuple[str, str, str], list[float]] = field(default_factory=_rows)
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    written_bytes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def mean_written(self, table: str) -> float | None:
        """The mean size billed for a write on table (the larger of before and after)."""
        size, writes = self.written_bytes.get(table, (0, 0))
        return size / writes if writes else None

    @property
    def write_units(self) -> float:
        """All write units."""
        return sum(w for w, _, _ in self.by_purpose.values())

    @property
    def read_units(self) -> float:
        """All read units."""
        return sum(r for _, r, _ in self.by_purpose.values())


def total(calls: Iterable[RecordedCall], tables: Mapping[str, Table]) -> Totals:
    """Sum every call's charges ([write units, read units, calls] per key)."""
    totals = Totals()
    for call in calls:
        totals.by_purpose[call.purpose][2] += 1
        totals.by_site[(call.purpose, call.site, call.operation)][2] += 1
        if call.failed:
            totals.failed[call.purpose] += 1
        for write in call.writes:
            totals.written_bytes[write.table][0] += max(item_size(write.before),
                                                        item_size(write.after))
            totals.written_bytes[write.table][1] += 1
        billed = charges(call, tables)
        for charge in billed:
            for row in (totals.by_purpose[call.purpose], totals.by_target[charge.target],
                        totals.by_site[(call.purpose, call.site, call.operation)]):
                row[0] += charge.write_units
                row[1] += charge.read_units
        for target in {charge.target for charge in billed}:
            totals.by_target[target][2] += 1
    return totals
