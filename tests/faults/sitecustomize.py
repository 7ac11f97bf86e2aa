"""Fault injection for tests/test_kill.py, loaded by every Python process that
has this folder on PYTHONPATH (the test puts it there for one Snakemake run).

With HOURGLASS_FAULTS="stage=regex;stage=regex" set, a write through
hourglass.io.atomic_path whose target matches a regex is cut short just before
its rename: the temporary is truncated to half its size (what a SIGKILL in the
middle of writing leaves), a marker file named for the stage is dropped in
HOURGLASS_FAULT_MARKERS, and the process sleeps until the test kills it. The
kill therefore always lands while a job of that stage is writing. Without the
variable nothing changes.
"""

import os
import re
import time

_SPEC = os.environ.get("HOURGLASS_FAULTS")

if _SPEC:
    _replace = os.replace
    _TARGETS = [(stage, re.compile(regex))
                for stage, regex in (item.split("=", 1) for item in _SPEC.split(";") if item)]
    _MARKERS = os.environ["HOURGLASS_FAULT_MARKERS"]

    def _cut_short(src, dst, *args, **kwargs):
        source, target = os.fspath(src), os.fspath(dst)
        if source.endswith(".tmp"):
            for stage, regex in _TARGETS:
                if regex.search(target):
                    os.truncate(source, os.path.getsize(source) // 2)
                    marker = os.path.join(_MARKERS, f"{stage}.{os.getpid()}")
                    with open(marker + ".part", "w") as f:
                        f.write(f"{os.path.abspath(target)}\n{os.path.abspath(source)}\n")
                    _replace(marker + ".part", marker)
                    while True:
                        time.sleep(1)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _cut_short
