"""The lifecycle parts on their own, on a real local Ray: coordinator, StageMember, InputDrain, Prefetcher,
BackgroundPutter."""

from __future__ import annotations

import threading
import time

import pytest

from peaknet_pipeline.coordinator import Coordinator, MemberStatus
from peaknet_pipeline.queue import ShardedQueue
from peaknet_pipeline.stages.member import InputDrain, StageMember
from peaknet_pipeline.stages.prefetch import BackgroundPutter, Prefetcher


@pytest.fixture
def coordinator(ray_session, namespace):
    handle = Coordinator.options(namespace=namespace).remote(heartbeat_timeout_s=1.0)
    yield handle
    ray_session.kill(handle)


@pytest.fixture
def q1(ray_session, namespace):
    q = ShardedQueue.create("unit-q1", 2, 4, namespace, poll_timeout_s=0.05)
    yield q
    q.destroy()


def status(stage, member, state, **kw) -> MemberStatus:
    return MemberStatus(stage=stage, member=member, state=state, **kw)


def test_a_stage_closes_when_every_member_ended_and_one_really_finished(ray_session, coordinator):
    ray = ray_session
    assert not ray.get(coordinator.stage_closed.remote("produce"))  # nobody registered yet
    coordinator.update.remote(status("produce", "p0", "running"))
    coordinator.update.remote(status("produce", "p1", "done", final=True))
    assert not ray.get(coordinator.stage_closed.remote("produce"))
    coordinator.update.remote(status("produce", "p0", "done"))
    assert ray.get(coordinator.stage_closed.remote("produce"))


def test_failed_members_end_a_stage_restarting_ones_keep_it_open(ray_session, coordinator):
    ray = ray_session
    coordinator.update.remote(status("infer", "i0", "running", frames_in=10, frames_out=8))
    coordinator.mark_restarting.remote("infer", "i0", "killed")
    assert not ray.get(coordinator.stage_closed.remote("infer"))
    # The new process reports, and its counts add to the dead one's.
    assert ray.get(coordinator.incarnation_of.remote("infer", "i0")) == 1
    coordinator.update.remote(status("infer", "i0", "running", incarnation=1, frames_in=5, frames_out=5))
    (merged,) = ray.get(coordinator.members.remote())
    assert (merged.frames_in, merged.frames_out, merged.state) == (15, 13, "running")
    coordinator.mark_failed.remote("infer", "i0", "out of restarts")
    assert ray.get(coordinator.stage_closed.remote("infer"))
    # A late heartbeat of the process declared dead changes nothing.
    coordinator.update.remote(status("infer", "i0", "running", incarnation=1, frames_in=99))
    (merged,) = ray.get(coordinator.members.remote())
    assert merged.state == "failed" and merged.frames_in == 15


def test_a_member_without_heartbeat_goes_silent_and_stops_blocking(ray_session, coordinator):
    ray = ray_session
    coordinator.update.remote(status("write", "w0", "running"))
    assert not ray.get(coordinator.stage_closed.remote("write"))
    time.sleep(1.3)  # the fixture's heartbeat_timeout_s is 1
    assert ray.get(coordinator.members.remote())[0].state == "silent"
    assert ray.get(coordinator.stage_closed.remote("write"))


def test_the_claim_is_won_once_and_taken_over_only_from_the_named_holder(ray_session, coordinator):
    ray = ray_session
    assert ray.get(coordinator.claim.remote("a")) == "won"
    assert ray.get(coordinator.claim.remote("b")) == "a"
    assert ray.get(coordinator.claim.remote("a")) == "won"  # the holder may claim again
    assert not ray.get(coordinator.take_over.remote("c", "someone-else"))
    assert ray.get(coordinator.take_over.remote("b", "a"))
    assert not ray.get(coordinator.take_over.remote("c", "a"))  # b got there first
    ray.get(coordinator.release.remote("b"))
    assert ray.get(coordinator.claim.remote("c")) == "won"


def test_stage_member_heartbeats_while_its_thread_is_busy(ray_session, coordinator):
    ray = ray_session
    member = StageMember(coordinator, "infer", "i0", interval_s=0.2)
    member.status.state = "running"
    for _ in range(8):  # a long compile: the member's own loop publishes nothing
        time.sleep(0.25)
        (seen,) = ray.get(coordinator.members.remote())
        assert seen.state == "running" and time.time() - seen.updated < 1.0
    member.finish(final=True)
    assert ray.get(coordinator.stage_closed.remote("infer"))


def test_a_start_failure_is_published_once_with_its_reason(ray_session, coordinator):
    ray = ray_session
    member = StageMember(coordinator, "write", "w0", interval_s=0.2)
    returned = member.start_failed(FileNotFoundError("writer.output_dir: nope"))
    (seen,) = ray.get(coordinator.members.remote())
    assert returned.state == seen.state == "failed"
    assert seen.error == "FileNotFoundError: writer.output_dir: nope"


def test_linger_waits_for_settlement_or_the_end_of_the_write_stage(ray_session, coordinator):
    producer = StageMember(coordinator, "produce", "p0", interval_s=0.2)
    producer.produced(8)
    t0 = time.monotonic()
    assert not producer.linger(8, timeout_s=0.5)  # nothing settled: gives up at its timeout
    assert time.monotonic() - t0 >= 0.5
    producer.settle(("p0",), 8, "written")
    assert producer.linger(8, timeout_s=5)
    other = StageMember(coordinator, "produce", "p1", interval_s=0.2)
    other.produced(4)
    coordinator.update.remote(status("write", "w0", "failed"))  # the last reader is gone
    assert other.linger(4, timeout_s=5)


def test_input_drain_ends_only_after_upstream_closed_and_the_queue_is_empty(ray_session, coordinator, q1):
    coordinator.update.remote(status("produce", "p0", "running"))
    consumer = StageMember(coordinator, "infer", "i0", interval_s=0.2)
    drain = InputDrain(consumer, q1, drain_timeout_s=10)
    assert drain.next_records(4, timeout=0.05) == []  # upstream still running: poll again
    q1.put_batch(["a", "b"])
    coordinator.update.remote(status("produce", "p0", "done", final=True))
    got = []
    while (records := drain.next_records(4, timeout=0.05)) is not None:
        got += records
    assert sorted(got) == ["a", "b"] and drain.ended_by_upstream()
    consumer.local_stop.set()
    assert drain.next_records(4, timeout=0.05) is None and not drain.ended_by_upstream()


def test_prefetcher_yields_payloads_and_fetch_errors_in_order(ray_session, coordinator, q1):
    coordinator.update.remote(status("produce", "p0", "running"))
    consumer = StageMember(coordinator, "infer", "i0", interval_s=0.2)
    q1.put_batch([1, 2, 3])

    def fetch(record):
        if record == 2:
            raise KeyError("lost")
        return record * 10

    items = iter(Prefetcher(InputDrain(consumer, q1, 10), fetch, depth=2, poll_timeout_s=0.05))
    seen = []
    while len(seen) < 3:
        record, payload = next(items)
        if record is not None:
            seen.append((record, payload))
    assert [r for r, _ in seen] == [1, 2, 3]
    assert seen[0][1] == 10 and isinstance(seen[1][1], KeyError) and seen[2][1] == 30
    coordinator.update.remote(status("produce", "p0", "done", final=True))
    assert all(record is None for record, _ in items)  # idle ticks, then the end


def test_prefetcher_raises_when_its_input_goes_away(ray_session, coordinator, q1):
    consumer = StageMember(coordinator, "infer", "i0", interval_s=0.2)
    coordinator.update.remote(status("produce", "p0", "running"))
    items = iter(Prefetcher(InputDrain(consumer, q1, 10), lambda r: r, depth=2, poll_timeout_s=0.05))
    q1.destroy()  # the queue shards die
    with pytest.raises(Exception, match="(?i)actor|died|unavailable"):
        for _ in range(200):
            next(items)


def test_background_putter_keeps_order_blocks_when_full_and_reports_errors():
    out: list[int] = []
    gate = threading.Event()

    def put(item: int) -> None:
        gate.wait()
        if item == 99:
            raise OSError("downstream gone")
        out.append(item)

    putter = BackgroundPutter(put, depth=2)
    blocked = threading.Thread(target=lambda: [putter.submit(i) for i in range(5)])
    blocked.start()
    time.sleep(0.3)
    assert blocked.is_alive()  # bounded: the third submit waits while the put is held up
    gate.set()
    blocked.join(5)
    putter.close()
    assert out == [0, 1, 2, 3, 4]
    failing = BackgroundPutter(put, depth=2)
    failing.submit(99)
    with pytest.raises(OSError, match="downstream gone"):
        failing.close()
