"""Cutting a sequence into batches bounded by count and by size."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batches(entries: Iterable[T], max_count: int, max_size: int,
            size_of: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive batches of at most max_count entries and max_size total size.

    An entry larger than max_size on its own still makes a batch of one.
    """
    batch: list[T] = []
    size = 0
    for entry in entries:
        entry_size = size_of(entry)
        if batch and (len(batch) == max_count or size + entry_size > max_size):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch
