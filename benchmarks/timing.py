"""Timing and memory helpers shared by run.py and reference_torch.py (stdlib only: both Pythons import it)."""

import resource
import statistics
import time


def peak_rss_mb():
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn, warmup, iterations):
    """Calls `fn` `warmup` times untimed, then `iterations` times; returns (median seconds, all times)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times
