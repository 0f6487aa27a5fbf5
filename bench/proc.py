"""What the kernel says about a process: memory, CPU time, bytes written; and about the machine."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcSample:
    """One look at a process. `cpu_s` counts every thread that ever ran (utime + stime, 10 ms
    ticks); `run_ns` sums the live threads' scheduler time (nanoseconds), which resolves the few
    milliseconds an idle daemon spends."""

    rss_kb: int
    hwm_kb: int  # peak RSS over the process's life
    cpu_s: float
    run_ns: int
    write_bytes: int  # bytes sent toward the block device (dirtied page cache), /proc/PID/io
    wchar: int  # bytes passed to write()-like syscalls


def _status_kb(pid: int, key: str) -> int:
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _run_ns(pid: int) -> int:
    total = 0
    for task in (PROC / str(pid) / "task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listing and reading
    return total


def _io(pid: int) -> dict[str, int]:
    out = {}
    for line in (PROC / str(pid) / "io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


def sample(pid: int) -> ProcSample:
    """Read the process's counters now. Raise OSError if it is gone."""
    io = _io(pid)
    return ProcSample(
        rss_kb=_status_kb(pid, "VmRSS"),
        hwm_kb=_status_kb(pid, "VmHWM"),
        cpu_s=_cpu_s(pid),
        run_ns=_run_ns(pid),
        write_bytes=io.get("write_bytes", 0),
        wchar=io.get("wchar", 0),
    )


def cpu_between(first: ProcSample, last: ProcSample) -> float:
    """CPU seconds between two samples: the finer scheduler clock unless a thread ended meanwhile
    (its time then shows only in the tick counters)."""
    ticks = last.cpu_s - first.cpu_s
    fine = (last.run_ns - first.run_ns) / 1e9
    return fine if fine >= ticks - 0.02 else ticks


def machine() -> str:
    """CPU model, cores, kernel and Python: where the figures came from."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{model}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, Linux {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def filesystem_of(path: Path) -> str:
    """The file system type holding `path` (from /proc/mounts, longest mount point wins)."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount, fstype = parts[1], parts[2]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind
