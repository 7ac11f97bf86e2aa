"""Progress a person can follow: log lines at a readable rate, and a bar on a terminal."""

import sys
import time


def log_line(line):
    print(line, flush=True)  # flushed, so that `tail -f` on the rule's log follows the run


def every(seconds, log):
    """A function of a line of text that passes it to `log`, with the time
    elapsed, at most once every `seconds`: long loops report without flooding
    the rule's log file."""
    start = time.perf_counter()
    last = -seconds

    def report(line):
        nonlocal last
        now = time.perf_counter() - start
        if now - last >= seconds:
            last = now
            log(f"{line} ({now:.0f} s)")
    return report


def bar(done, total, what, stream=sys.stderr, width=30):
    """Redraw a one-line progress bar on `stream` when it is a terminal (a
    person running a stage by hand); a log file gets nothing."""
    if not stream.isatty():
        return
    filled = round(width * done / total) if total else width
    end = "\n" if done >= total else ""
    stream.write(f"\r{what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    stream.flush()
