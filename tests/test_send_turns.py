"""Several calls in flight: never more out at once than allowed, the next chunks claimed and
re-read while calls are out, and every way a call can end still handled as with one call at
a time (a throttled chunk sent again, a lost or failed answer never sent again).

Against the simulator over real HTTP; the calls are counted and held at the HTTP boundary.
"""

import threading
import time
from collections import Counter

import pytest

from dashboard.models import RolloutServer
from dashboard.rollouts import control, engine, send
from tests.rollout_helpers import movable
from tests.test_send_statements import (
    CHANGE_PATH,
    NO_SLEEP,
    Boundary,
    client_with,
    confirmed,
    sent,
    start_fleet,
    states,
)

SIZE = 300  # six chunks


class Held(Boundary):
    """A Boundary whose batch-change-image calls are held a moment at the boundary, counting
    how many are out at once and what the rollout's rows look like while they are."""

    def __init__(self, rollout_id: int, *, expect: int | None = None, **faults):
        super().__init__(**faults)
        self.rollout_id = rollout_id
        self.out = 0
        self.most = 0
        self.claimed_meanwhile = 0  # rows claimed and re-read, waiting for a call to answer
        self.lock = threading.Condition()
        # With `expect`, the first calls are held until that many are out at once (or a few
        # seconds have passed), not only a moment: a busy machine may take longer than the
        # moment between the first call and the last of the first round.
        self.expect = expect

    def send(self, request, *args, **kwargs):
        if request.method != "POST" or CHANGE_PATH not in request.url:
            return super().send(request, *args, **kwargs)
        with self.lock:
            self.out += 1
            self.most = max(self.most, self.out)
            self.lock.notify_all()
            if self.expect is not None:
                self.lock.wait_for(lambda: self.most >= self.expect, timeout=5)
        try:
            time.sleep(0.05)
            waiting = RolloutServer.objects.filter(
                rollout_id=self.rollout_id, state=RolloutServer.State.SUBMITTING
            ).count()
            with self.lock:
                self.claimed_meanwhile = max(self.claimed_meanwhile, waiting)
            return super().send(request, *args, **kwargs)
        finally:
            with self.lock:
                self.out -= 1


def rollout_of(sim, settings, in_flight: int):
    settings.ROLLOUT_CALLS_IN_FLIGHT = in_flight
    target, servers = movable(SIZE)
    return confirmed(target, servers[:SIZE])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_flight", [2, 4])
def test_never_more_calls_out_than_allowed_and_the_next_chunks_are_ready_meanwhile(
    simulator_factory, settings, in_flight
) -> None:
    sim = start_fleet(simulator_factory, settings, 1000)
    rollout = rollout_of(sim, settings, in_flight)
    boundary = Held(rollout.pk, expect=in_flight)

    engine.start(rollout.pk, client_with(boundary), **NO_SLEEP)

    assert boundary.most == in_flight
    assert boundary.claimed_meanwhile >= 50  # a whole chunk claimed while calls were out
    assert states(rollout) == {"waiting": SIZE}
    ids = sorted(rollout.servers.values_list("server_id", flat=True))
    assert sorted(sent(sim)) == ids  # each server once


@pytest.mark.django_db(transaction=True)
def test_with_calls_in_flight_each_ending_is_handled_as_one_at_a_time(
    simulator_factory, settings
) -> None:
    """Of six calls: one throttled (sent again after the wait), one sent and its answer lost
    and one answered 503 (both reconciled later, never sent again), the rest accepted."""
    sim = start_fleet(simulator_factory, settings, 1000)
    rollout = rollout_of(sim, settings, 4)
    boundary = Held(rollout.pk, change=[429, None, "lose", 503])

    engine.start(rollout.pk, client_with(boundary), **NO_SLEEP)

    assert boundary.most <= 4
    assert states(rollout) == {"waiting": SIZE - 100, "unknown": 100}
    unknown = set(rollout.servers.filter(state="unknown").values_list("server_id", flat=True))
    reached = Counter(sent(sim))
    assert set(reached.values()) == {1}  # nothing reached the cloud twice
    lost = {s for s in unknown if s in reached}  # the call sent, its answer lost
    assert len(lost) == 50 and len(unknown - lost) == 50  # the 503 never reached it
    assert set(reached) == set(rollout.servers.values_list("server_id", flat=True)) - (
        unknown - lost
    )


class PausedDuringFirstCall(Held):
    """Pauses the rollout (as an operator would) while the first change call is out: the
    chunks claimed and re-read meanwhile are waiting for a turn."""

    def __init__(self, rollout_id: int):
        super().__init__(rollout_id)
        self.paused = False
        self.waiting_at_pause = self.marked_at_pause = 0

    def send(self, request, *args, **kwargs):
        if request.method == "POST" and CHANGE_PATH in request.url and not self.paused:
            self.paused = True
            time.sleep(0.03)  # the next chunks are claimed and re-read meanwhile
            rows = RolloutServer.objects.filter(rollout_id=self.rollout_id)
            self.waiting_at_pause = rows.filter(state=RolloutServer.State.SUBMITTING).count()
            control.pause(self.rollout_id, by="otto")
            # From here on no chunk may be marked: these are all that may still be sent.
            self.marked_at_pause = rows.exclude(state__in=["pending", "submitting"]).count()
        return super().send(request, *args, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_a_pause_stops_the_chunks_waiting_for_a_turn(simulator_factory, settings) -> None:
    sim = start_fleet(simulator_factory, settings, 1000)
    rollout = rollout_of(sim, settings, 2)
    boundary = PausedDuringFirstCall(rollout.pk)

    engine.start(rollout.pk, client_with(boundary), **NO_SLEEP)

    assert boundary.waiting_at_pause >= 50  # a chunk was ready and waiting for its turn
    assert 50 <= len(sent(sim)) == boundary.marked_at_pause < SIZE
    assert states(rollout)["pending"] == SIZE - boundary.marked_at_pause  # the rest went back
    assert Counter(sent(sim)).most_common(1)[0][1] == 1


def test_book_keeping_waits_for_a_call_about_to_leave() -> None:
    """A thread holding a turn and on its way to the call goes first: writing an answer or
    claiming a chunk waits until its call has left."""
    calls = send._Calls(2)
    turn = send._Turn(calls).__enter__()
    done = threading.Event()

    def bookkeeping() -> None:
        with send._bookkeeping(calls):
            done.set()

    waiting = threading.Thread(target=bookkeeping)
    waiting.start()
    assert not done.wait(0.2)
    turn.left()  # the call goes out
    assert done.wait(5)
    waiting.join()
    turn.answered()
    assert calls.free == 2 and calls.leaving == 0


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _until(condition) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_an_answer_is_written_after_the_chunk_its_freed_turn_sends() -> None:
    """A call answers while another chunk waits for a turn: the turn goes to that chunk,
    and its call leaves before the answer is written (book-keeping right after giving the
    turn back still waits for it)."""
    calls = send._Calls(1)
    answered = send._Turn(calls).__enter__()
    answered.left()
    took, go = threading.Event(), threading.Event()

    def waiting_chunk() -> None:
        turn = send._Turn(calls).__enter__()
        took.set()
        go.wait(5)
        turn.left()

    _in_thread(waiting_chunk)
    _until(lambda: calls.ready == 1)
    written = threading.Event()

    def answer() -> None:
        answered.answered()
        with answered.bookkeeping():
            written.set()

    _in_thread(answer)
    assert took.wait(5)
    assert not written.wait(0.2)  # the chunk that took the turn has not left yet
    go.set()
    assert written.wait(5)


def test_threads_on_their_way_leave_one_at_a_time() -> None:
    calls = send._Calls(2)
    first = send._Turn(calls).__enter__()
    second_took = threading.Event()
    _in_thread(lambda: (send._Turn(calls).__enter__(), second_took.set()))
    assert not second_took.wait(0.2)  # a turn is free, but the first is still on its way
    first.left()
    assert second_took.wait(5)


def test_a_chunk_no_turn_awaits_is_judged_once_nothing_is_on_its_way() -> None:
    calls = send._Calls(1)
    judged = threading.Event()

    def judge() -> None:
        with calls.judging():
            judged.set()

    _in_thread(judge)
    assert judged.wait(5)  # a free turn awaits it
    judged.clear()
    turn = send._Turn(calls).__enter__()
    _in_thread(judge)
    assert not judged.wait(0.2)  # no free turn, and a call on its way
    turn.left()
    assert judged.wait(5)
