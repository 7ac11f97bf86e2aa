"""Timing that says when other work shared the machine: for the benchmarks beside it."""

import os
import resource
import time

import torch


def busy_seconds():
    """CPU seconds all processes on the machine have used, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    ticks = sum(int(f) for f in fields[:8]) - int(fields[3]) - int(fields[4])  # less idle and iowait
    return ticks / os.sysconf("SC_CLK_TCK")


def own_seconds():
    """CPU seconds this process and its finished children have used."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def timed(run, device="cpu"):
    """(seconds, other processes' CPU seconds meanwhile, result) of run()."""
    if device == "cuda":
        torch.cuda.synchronize()
    busy, own, start = busy_seconds(), own_seconds(), time.perf_counter()
    out = run()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    other = max(0.0, busy_seconds() - busy - (own_seconds() - own))
    return seconds, other, out


def contended(seconds, other):
    """A mark for a figure taken while other processes used more than a tenth of a core."""
    return "  contended" if other > 0.1 * seconds else ""
