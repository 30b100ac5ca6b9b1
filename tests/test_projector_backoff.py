"""The reconciler's per-profile retry queue, on a clock the test moves (no timing)."""

from __future__ import annotations

import math

from hermes_lifecycle.projector.reconcile import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_key_backs_off_on_its_own_and_done_forgets_it():
    clock = Clock()
    queue = Backoff(first=0.05, limit=5.0, clock=clock)
    assert queue.next_due() == math.inf and queue.due() == set()

    delays = []
    for _ in range(10):
        queue.again("stubborn")
        delays.append(round(queue.next_due() - clock.now, 3))
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]  # doubling, then the limit

    queue.again("alice")  # a new key starts at the first delay, whatever another key's history
    assert round(queue.next_due() - clock.now, 3) == 0.05
    clock.now += 0.05
    assert queue.due() == {"alice"}
    clock.now += 5.0
    assert queue.due() == {"alice", "stubborn"}

    queue.done("alice")
    assert queue.pending() == {"stubborn"}
    queue.done("stubborn")
    queue.again("stubborn")  # forgotten: starts over
    assert round(queue.next_due() - clock.now, 3) == 0.05
