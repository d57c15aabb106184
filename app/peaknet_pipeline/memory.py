"""Resident memory of this process and bytes used in Ray's object store, for bounded-memory checks."""

from __future__ import annotations

import os
import resource
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_rss() -> int:
    """Resident memory of this process alone, in bytes: resident minus shared pages, because pages of
    the object store that a process maps count as resident and are reported separately. Linux reads
    /proc; elsewhere the peak RSS is the best the OS offers."""
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class ObjectStoreUsage:
    """Bytes in the object stores of all nodes. Ray has no public call for this; `ray memory` uses the
    same raylet request, so it is as stable as that command."""

    def __init__(self) -> None:
        import ray
        from ray._private.internal_api import get_state_from_address

        self._state = get_state_from_address(ray.get_runtime_context().gcs_address)

    def usage(self) -> tuple[int, int]:
        """(bytes used, number of objects): the count shows a leak of objects that bytes hide in noise."""
        from ray._private.internal_api import get_memory_info_reply

        stats = get_memory_info_reply(self._state, timeout_seconds=10).store_stats
        return int(stats.object_store_bytes_used), int(stats.num_local_objects)
