"""Time as the agent sees it: wall clock, monotonic clock, sleep, and whether the wall clock is synced.

A gateway has no real-time clock: after a power cut the wall clock restarts at the last saved time (or
1970) and jumps when NTP syncs. Everything that schedules uses `monotonic()`; only readings carry wall
time, together with the evidence needed to correct it later.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
from pathlib import Path
from typing import Protocol

# A wall clock before this cannot be right: it is the fake-hwclock or 1970 after a power cut.
PLAUSIBLE_AFTER_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock(Protocol):
    """What the agent needs of time. The simulator passes a virtual one."""

    def wall(self) -> float:
        """Seconds since the epoch, UTC, as the wall clock says (may be wrong before sync)."""
        ...

    def monotonic(self) -> float:
        """Seconds since boot; never jumps; restarts at zero on every boot."""
        ...

    def synced(self) -> bool:
        """True once the wall clock is known to be right (NTP synced)."""
        ...


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read, the rest pads to the kernel's size.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def kernel_clock_synced() -> bool | None:
    """Ask the kernel whether an NTP daemon has disciplined the clock (what timedatectl reports).

    adjtimex with modes=0 only reads. Returns None when the call is unavailable, so the caller can fall
    back to other evidence.
    """
    try:
        # By soname: find_library would run ldconfig on every call.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC


class SystemClock:
    """The real clock of the machine."""

    def __init__(self, *, sync_marker: Path = Path("/run/systemd/timesync/synchronized")) -> None:
        self._sync_marker = sync_marker
        self._synced = False

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        # CLOCK_BOOTTIME would count suspend, but gateways never suspend; monotonic is what
        # /proc/uptime's first field tracks closely enough for re-stamping within one boot.
        return time.monotonic()

    def synced(self) -> bool:
        # Once synced, stay synced for this process: a brief loss of the NTP server does not make the
        # clock wrong, and flapping would re-stamp nothing useful.
        if not self._synced:
            self._synced = self._check()
        return self._synced

    def _check(self) -> bool:
        if time.time() < PLAUSIBLE_AFTER_S:
            return False
        if self._sync_marker.exists():
            return True
        # Not adjtimex(2) here: the service's sandbox (ProtectClock=) forbids even reading it.
        # timedated answers over D-Bus for any NTP client (timesyncd, chrony, ntpd).
        return timedated_synced() is True


def timedated_synced(timeout_s: float = 2.0) -> bool | None:
    """What `timedatectl` says of NTP synchronization; None when it cannot say."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        result = subprocess.run(
            [tool, "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = result.stdout.strip()
    if result.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """The kernel's id of this boot: readings from different boots cannot share a monotonic base."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"
