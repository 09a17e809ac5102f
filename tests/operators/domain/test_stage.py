"""Event time through a keyed stage (operators.domain.watermark, operators.domain.stage): the
frontiers that make W, the reorder buffer, and a bucket applying its inputs in order-key order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.stage import Bucket
from operators.domain.watermark import Frontiers, OrderKey, Reorder


class Recorder:
    """A Logic that records what the bucket asks of it: ("apply", key), ("fire", time), ("flush",).
    Like the real logics, its clock never moves back."""

    def __init__(self) -> None:
        self.state: list[tuple[Any, ...]] = []
        self.now = -(2**62)

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        self.state.append(("apply", key, item, self.now))
        out.append(item)

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        if time_ms > self.now:
            self.now = time_ms
            self.state.append(("fire", time_ms))

    def flush(self, out: list[Any]) -> None:
        self.state.append(("flush",))

    def applied(self) -> list[Any]:
        return [entry[2] for entry in self.state if entry[0] == "apply"]


def key(time_ms: int, tie: str = "e", seq: int = 0) -> OrderKey:
    return (time_ms, tie, seq)


# -- frontiers ----------------------------------------------------------------------------------


def test_w_is_none_until_every_expected_sender_has_spoken() -> None:
    frontiers = Frontiers(["p0", "p1", "p2"])
    assert frontiers.current() is None
    frontiers.update("p0", 100)
    frontiers.update("p1", 50)
    assert frontiers.current() is None  # p2 has not spoken: "those seen so far" is not enough
    frontiers.update("p2", None)  # a packet without a promise yet says nothing
    assert frontiers.current() is None
    frontiers.update("p2", 70)
    assert frontiers.current() == 50  # the slowest sender
    frontiers.update("p1", 90)
    assert frontiers.current() == 70


def test_senders_outside_the_configuration_are_ignored() -> None:
    frontiers = Frontiers(["p0"])
    frontiers.update("stranger", 5)
    assert frontiers.current() is None
    frontiers.update("p0", 10)
    frontiers.update("stranger", 1)
    assert frontiers.current() == 10 and frontiers.state() == ({"p0": 10}, {})


def test_promises_never_move_back() -> None:
    frontiers = Frontiers(["p0"])
    frontiers.update("p0", 100)
    frontiers.update("p0", 40)  # an older promise reordered behind a newer one
    assert frontiers.current() == 100
    frontiers.update("p0", None)
    assert frontiers.current() == 100
    frontiers.update("p0", 101)
    assert frontiers.current() == 101


def test_done_senders_no_longer_hold_w_back_and_w_is_the_largest_final_when_all_are_done() -> None:
    frontiers = Frontiers(["replay", "snapshots", "idle"])
    frontiers.update("replay", 500)
    frontiers.update("snapshots", 10)
    frontiers.update("idle", 200)
    assert frontiers.current() == 10
    frontiers.update("snapshots", 20, done=True)  # its file ended at 20
    assert frontiers.current() == 200 and not frontiers.all_done
    frontiers.update("snapshots", 9_999)  # nothing a done sender says counts any more
    assert frontiers.current() == 200
    frontiers.update("idle", None, done=True)  # done without a final: its last promise stands
    assert frontiers.current() == 500
    frontiers.update("replay", 300, done=True)  # final = max(final promise, earlier promises)
    assert frontiers.all_done
    assert frontiers.current() == 500  # max final (design.md 3.1: W = max received at the end)
    assert frontiers.finals == {"snapshots": 20, "idle": 200, "replay": 500}


def test_a_sender_that_never_promised_anything_has_no_final() -> None:
    frontiers = Frontiers(["a", "b"])
    frontiers.update("a", None, done=True)
    assert frontiers.current() is None  # b has not spoken
    frontiers.update("b", None, done=True)
    assert frontiers.all_done and frontiers.current() is None


def test_frontiers_restore_from_their_state() -> None:
    frontiers = Frontiers(["a", "b", "c"])
    frontiers.update("a", 10)
    frontiers.update("b", 30, done=True)
    restored = Frontiers(["a", "b", "c"])
    restored.restore(*frontiers.state())
    assert restored.current() is None  # c still has not spoken
    restored.update("c", 20)
    assert restored.current() == 10 and restored.done == {"b"}
    restored.update("a", 40, done=True)
    restored.update("c", 5, done=True)
    assert restored.current() == 40


# -- reorder ------------------------------------------------------------------------------------


def test_reorder_releases_in_key_order_up_to_w() -> None:
    reorder = Reorder()
    for item_key, item in [(key(30, "b"), "b30"), (key(10, "z"), "z10"), (key(30, "a", 2), "a30-2"),
                           (key(30, "a", 1), "a30-1"), (key(50), "e50")]:  # fmt: skip
        reorder.push(item_key, item)
    assert reorder.newest() == 50
    assert [item for _, item in reorder.pop_until(30)] == ["z10", "a30-1", "a30-2", "b30"]
    assert len(reorder) == 1 and list(reorder.pop_until(49)) == []
    assert [item for _, item in reorder.pop_until(50)] == ["e50"]
    assert len(reorder) == 0 and reorder.newest() is None  # Discarded when: released


def test_reorder_keeps_equal_keys_in_arrival_order_without_comparing_items() -> None:
    reorder = Reorder()
    first, second = object(), object()  # objects without an order: a comparison would raise
    reorder.push(key(1), first)
    reorder.push(key(1), second)
    assert [item for _, item in reorder.pop_until(1)] == [first, second]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from("abc"), st.integers(0, 2)), max_size=30))
def test_reorder_pops_sorted_for_any_push_order(keys: list[OrderKey]) -> None:
    reorder = Reorder()
    for index, item_key in enumerate(keys):
        reorder.push(item_key, index)
    released = list(reorder.pop_until(10))
    assert [k for k, _ in released] == sorted(k for k in keys if k[0] <= 10)
    assert sorted(k for k, _ in reorder.pop_until(20)) == sorted(k for k in keys if k[0] > 10)


# -- bucket -------------------------------------------------------------------------------------


def test_bucket_waits_for_every_sender_then_applies_in_key_order() -> None:
    logic = Recorder()
    bucket = Bucket(["dedup/0", "dedup/1"], logic)
    out: list[Any] = []
    bucket.receive("dedup/0", 100, False, [(key(90, "x"), "x90"), (key(20), "e20")], out)
    bucket.settle(out)
    assert out == [] and bucket.watermark is None  # dedup/1 has not spoken
    bucket.receive("dedup/1", 25, False, [(key(10), "e10")], out)
    bucket.settle(out)
    assert out == ["e10", "e20"] and bucket.watermark == 25
    assert logic.state == [
        ("flush",),
        ("fire", 10),
        ("apply", key(10), "e10", 10),
        ("fire", 20),
        ("apply", key(20), "e20", 20),
        ("fire", 25),
        ("flush",),
    ]
    assert len(bucket.reorder) == 1  # x90 waits for W


def test_an_item_at_or_below_w_is_applied_at_once_as_late() -> None:
    logic = Recorder()
    bucket = Bucket(["s"], logic)
    out: list[Any] = []
    bucket.receive("s", 50, False, [], out)
    bucket.settle(out)
    bucket.receive("s", 50, False, [(key(50), "at-w"), (key(10), "late"), (key(51), "waits")], out)
    assert out == ["at-w", "late"]  # applied on receipt, at the logic's clock (W), not re-timed
    assert [entry[3] for entry in logic.state if entry[0] == "apply"] == [50, 50]
    bucket.settle(out)
    assert out == ["at-w", "late"] and len(bucket.reorder) == 1
    bucket.receive("s", 51, False, [], out)
    bucket.settle(out)
    assert out[-1] == "waits"


def test_timers_fire_before_an_item_of_the_same_time() -> None:
    class Deadline(Recorder):
        """Fires one timer due at 100; records whether it had fired when each item was applied."""

        def fire_until(self, time_ms: int, out: list[Any]) -> None:
            if self.now < 100 <= time_ms:
                out.append("deadline@100")
            super().fire_until(time_ms, out)

    logic = Deadline()
    bucket = Bucket(["s"], logic)
    out: list[Any] = []
    bucket.receive("s", 200, False, [(key(100), "item@100"), (key(99), "item@99")], out)
    bucket.settle(out)
    assert out == ["item@99", "deadline@100", "item@100"]


def test_w_never_moves_back_and_flush_runs_once_per_settle() -> None:
    logic = Recorder()
    bucket = Bucket(["a", "b"], logic)
    out: list[Any] = []
    bucket.receive("a", 10, False, [], out)
    bucket.receive("b", 10, False, [], out)
    bucket.settle(out)
    assert bucket.watermark == 10
    bucket.receive("a", 5, False, [], out)  # a stale promise
    bucket.settle(out)
    assert bucket.watermark == 10 and [e for e in logic.state if e[0] == "flush"] == [("flush",)] * 2


def test_bucket_is_done_when_every_sender_is_done_and_nothing_waits() -> None:
    logic = Recorder()
    bucket = Bucket(["a", "b"], logic)
    out: list[Any] = []
    bucket.receive("a", 10, True, [(key(7), "a7")], out)
    bucket.settle(out)
    assert not bucket.done and out == []
    bucket.receive("b", 3, True, [(key(3), "b3")], out)
    assert bucket.frontiers.all_done and not bucket.done  # a7 and b3 still wait
    bucket.settle(out)
    assert out == ["b3", "a7"] and bucket.watermark == 10 and bucket.done


@pytest.mark.parametrize("batches", [1, 3, 7])
def test_the_applied_sequence_does_not_depend_on_how_items_are_batched(batches: int) -> None:
    items = [(key(t, f"e{t % 3}"), f"e{t}") for t in (5, 3, 9, 1, 8, 2, 7, 4, 6)]
    logic = Recorder()
    bucket = Bucket(["s"], logic)
    out: list[Any] = []
    size = -(-len(items) // batches)
    for start in range(0, len(items), size):
        bucket.receive("s", None, False, items[start : start + size], out)
        bucket.settle(out)
    bucket.receive("s", 9, True, [], out)
    bucket.settle(out)
    assert out == sorted((item for _, item in items), key=lambda name: int(name[1:]))
