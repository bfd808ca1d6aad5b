"""bench/load.py's workers: when a worker told "nothing left" asks again, and when it stops."""
from bench.load import LAST_POLL_SECONDS, LAST_POLLS, RETRY_SECONDS, _Slots


def _slots(acked: int, leased: int) -> _Slots:
    slots = _Slots(100)
    slots.acked, slots.leased = acked, leased
    return slots


def test_a_worker_told_nothing_left_while_many_slots_are_open_keeps_asking():
    # GIVEN 20 of 100 slots neither answered nor leased
    slots = _slots(acked=70, leased=10)
    # THEN a worker told "nothing left" asks again soon, however often it was told so
    assert slots.wait_after_nothing_left(1) == RETRY_SECONDS
    assert slots.wait_after_nothing_left(LAST_POLLS + 10) == RETRY_SECONDS


def test_a_worker_told_nothing_left_near_the_end_polls_a_few_times_before_it_stops():
    # GIVEN one of 100 slots open and none of the others answered yet
    slots = _slots(acked=60, leased=39)
    # THEN a worker told "nothing left" asks again LAST_POLLS times in a row, then stops
    waits = [slots.wait_after_nothing_left(miss) for miss in range(1, LAST_POLLS + 2)]
    assert waits == [LAST_POLL_SECONDS] * LAST_POLLS + [None]
    # AND it stops at once when every slot is answered
    assert _slots(acked=100, leased=0).wait_after_nothing_left(1) is None
