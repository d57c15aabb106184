"""ray.prefault_store: a process maps the object store in one call, and its puts stop faulting. Against the
session's real Ray (400 MiB store) and this machine's kernel."""

from __future__ import annotations

import logging
import mmap
import resource
import uuid

import numpy as np
import pytest

from peaknet_pipeline import store_mapping
from peaknet_pipeline.store_mapping import CHUNK, Region, chunks, populate, store_regions

MAPS = """\
7fe883000000-7fe89c000000 rw-s 00000000 00:1b 1125                       /dev/shm/plasmaAsAAZN (deleted)
7fe89c000000-7fe89d000000 r--s 00000000 00:1b 1126                       /dev/shm/plasmaAsAAZN (deleted)
7fe8a0000000-7fe8a1000000 rw-s 00000000 08:01 2001                       /tmp/plasmaFallback (deleted)
7fe8b0000000-7fe8b1000000 rw-p 00000000 00:00 0                          [heap]
7fe8c0000000-7fe8c0001000 rw-s 00000000 00:1b 1127                       /dev/shm/other
"""


def test_only_the_writable_store_mapping_on_tmpfs_is_taken(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(MAPS)
    assert store_regions(str(maps)) == [Region(0x7FE883000000, 0x7FE89C000000)]
    assert store_regions(str(tmp_path / "absent")) == []  # no /proc: nothing to map


def test_chunks_cover_every_region_once_from_where_they_start():
    regions = [Region(0, 2 * CHUNK + 5), Region(10 * CHUNK, 11 * CHUNK)]
    for first in (0.0, 0.3, 0.99):
        pieces = chunks(regions, first)
        assert sorted((p.start, p.end) for p in pieces) == [
            (0, CHUNK), (CHUNK, 2 * CHUNK), (2 * CHUNK, 2 * CHUNK + 5), (10 * CHUNK, 11 * CHUNK),
        ]  # fmt: skip
    assert chunks(regions, 0.5)[0] == Region(2 * CHUNK, 2 * CHUNK + 5)  # 4 pieces: starts at the third


def faults_per_page(putter_prefault: bool) -> float:
    """Minor faults per page of the puts an actor makes after its first put. With prefault, the Putter maps the
    store as it is made, before the actor has put anything."""
    import ray

    @ray.remote(num_cpus=0)
    class Putting:
        def run(self, prefault: bool) -> float:
            putter = store_mapping.Putter(prefault)
            if prefault and putter.wait_mapped(60) == 0:
                # Skip only where this kernel cannot populate; a putter that did not map fails the test.
                return -1.0 if store_mapping.prefault() == 0 else float("inf")
            batch = np.ones(2**20, np.float32)  # 4 MiB: a plasma object, not inlined
            held = [putter.put(batch)]
            start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(40):  # 160 MiB, eight held at a time as a queue would
                held = [*held[-7:], putter.put(batch)]
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
            return faults * mmap.PAGESIZE / (40 * batch.nbytes)

    # A process of its own (a runtime env no other worker has): a pooled worker may have touched the store before.
    actor = Putting.options(runtime_env={"env_vars": {"PEAKNET_TEST_PROCESS": uuid.uuid4().hex}}).remote()
    try:
        return ray.get(actor.run.remote(putter_prefault), timeout=120)
    finally:
        ray.kill(actor)


def test_prefaulted_puts_do_not_fault(ray_session):
    populated = faults_per_page(True)
    if populated < 0:
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)")
    fresh = faults_per_page(False)
    assert populated < 0.05 < fresh, (populated, fresh)  # about 0.005 against 0.6-1.0 here


def test_a_mapping_it_cannot_populate_is_logged_and_skipped(caplog):
    hole = Region(0x10000, 0x10000 + 2**20)  # nothing is mapped at 64 KiB
    with caplog.at_level(logging.WARNING, logger="peaknet_pipeline.store_mapping"):
        assert populate([hole]) == 0
    assert "not mapped up front" in caplog.text
