"""The CPU time a process has used, read from /proc: what the benchmarks charge to each part
(the API, influxd, the load test's own clients)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far. The kernel gives each in whole clock
    ticks, rounded down on its own, so the sum can read up to two ticks under the true total."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
