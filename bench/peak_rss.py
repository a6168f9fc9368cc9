"""Run a command; write its wall time, exit code and peak RSS as JSON. Usage: peak_rss.py RESULT_JSON COMMAND [ARG...]

Why a separate small process: a child's ru_maxrss starts at its parent's RSS when it is forked (on exec the kernel
keeps the larger of the old and new address spaces' peaks), so measured straight from the benchmark, which holds
the data set in memory, every child would report the benchmark's own size. This wrapper imports nothing beyond
the standard library and stays far below what it measures.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    result_path, *command = sys.argv[1:]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)  # this one child's usage, unlike RUSAGE_CHILDREN
    result = {
        "wall_seconds": time.perf_counter() - started,
        "exit_code": os.waitstatus_to_exitcode(status),
        "peak_rss_kib": usage.ru_maxrss,  # KiB on Linux
    }
    with open(result_path, "w") as file:
        json.dump(result, file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
