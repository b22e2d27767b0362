#!/usr/bin/env python3
"""Touches the machine's free memory once, so the benchmarks that follow measure the programs
rather than the hypervisor. This lab's machines are virtual, and the host backs a guest page
with real memory only when the guest first writes it: a page cache growing into memory the
guest never touched pays that fault per 4 KiB page (a plain 64 KiB pwrite loop measured
0.25 s/GiB into touched memory, 2.5 s/GiB once past it: docs/benchmarks.md). Every benchmark
of docs/benchmarks.md calls warm() first; on a physical machine it costs a few seconds and
changes nothing. usage: bench/warm_memory.py"""
import mmap

CHUNK = 64 << 20


def warm(spare_bytes=1 << 30):
    """Writes every page of MemAvailable but `spare_bytes` once, then gives the memory back."""
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    size = (max(0, available - spare_bytes) // CHUNK) * CHUNK
    if size == 0:
        return 0
    zeros = b"\1" * CHUNK
    with mmap.mmap(-1, size) as m:
        if hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)  # 2 MiB faults: seconds rather than a minute
        for off in range(0, size, CHUNK):
            m[off:off + CHUNK] = zeros
    return size


if __name__ == "__main__":
    print("warmed %d MiB" % (warm() >> 20))
