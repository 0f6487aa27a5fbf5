"""Virtual time: the simulated world's true time, and each gateway's clock as the gateway sees it.

`Timeline` is the true time of a simulated world; the simulator advances it, so a day runs in seconds.
`VirtualClock` implements `agent.clock.Clock` for one gateway on that timeline: monotonic time since its
last boot, and a wall clock that is wrong after a power cut (it restarts at the time fake-hwclock last
saved) until "NTP" syncs it.
"""

from __future__ import annotations

import array
import bisect
import time


class Timeline:
    """True time (seconds since the epoch) of one simulated world, shared by all its gateways.

    It also remembers which virtual instant was current at which real instant, so the time a message
    reached the broker (a real event) can be placed on the virtual timeline.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self._now = start
        # Flat arrays, not lists of floats: 16 B a step instead of 64, in runs of many steps.
        self._real = array.array("d", [time.time()])
        self._virtual = array.array("d", [start])

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move true time forward. Raise ValueError for a negative step: true time never runs back."""
        if seconds < 0:
            raise ValueError(f"time runs forward only, got a step of {seconds} s")
        self._now += seconds
        self._real.append(time.time())
        self._virtual.append(self._now)

    def virtual_at(self, real: float) -> float:
        """The virtual time that was current at real time `real` (time.time())."""
        index = bisect.bisect_right(self._real, real) - 1
        return self._virtual[max(0, index)]

    def marks(self) -> list[tuple[float, float]]:
        """(real, virtual) pairs, one per step: enough to rebuild `virtual_at` elsewhere."""
        return list(zip(self._real, self._virtual, strict=True))


def virtual_at(marks: list[tuple[float, float]], real: float) -> float:
    """`Timeline.virtual_at` from the marks a timeline handed over (from another process)."""
    index = bisect.bisect_right(marks, (real, float("inf"))) - 1
    return marks[max(0, index)][1]


class VirtualClock:
    """One gateway's clock on a timeline (implements agent.clock.Clock).

    The gateway has no RTC. Booted with `power_on`, its wall clock starts at the time fake-hwclock saved
    last (every `hwclock_save_s` of uptime) and runs at the true rate; it jumps to true time when NTP
    syncs, `sync_after_s` after the boot (None: not during this boot). The gateway's crystal runs
    `drift_ppm` fast, so monotonic time (and the unsynced wall clock) drift from true time; that drift
    is what limits how well readings taken before a sync can be re-stamped.
    """

    def __init__(
        self, timeline: Timeline, *, hwclock_save_s: float = 3600.0, drift_ppm: float = 0.0
    ) -> None:
        self._timeline = timeline
        self._save_s = hwclock_save_s
        self._rate = 1.0 + drift_ppm / 1e6
        now = timeline.now()
        # The first boot of a run is a gateway that has been running for a while: synced.
        self._boot_true = now
        self._boot_wall = now
        self._sync_at: float | None = now
        self._saved_wall = now
        self.boot_true: float = now
        # A wrong time served by NTP, or a technician's `date -s`: the wall clock steps, monotonic
        # time does not.
        self.wall_step_s = 0.0

    # -- agent.clock.Clock ---------------------------------------------------------------------
    def wall(self) -> float:
        return self._wall_at(self._timeline.now())

    def monotonic(self) -> float:
        return (self._timeline.now() - self._boot_true) * self._rate

    def synced(self) -> bool:
        return self._sync_at is not None and self._timeline.now() >= self._sync_at

    # -- the simulator's side ------------------------------------------------------------------
    def true_time(self) -> float:
        return self._timeline.now()

    def advance(self, seconds: float) -> None:
        self._timeline.advance(seconds)

    def power_off(self) -> None:
        """The power goes: remember what fake-hwclock saved last (its hourly save, not this moment)."""
        now = self._timeline.now()
        uptime = now - self._boot_true
        last_save = self._boot_true + (uptime // self._save_s) * self._save_s
        self._saved_wall = self._wall_at(last_save)

    def power_on(self, *, sync_after_s: float | None) -> None:
        """The power returns: monotonic restarts at 0, the wall clock at the last saved time."""
        now = self._timeline.now()
        self._boot_true = now
        self.boot_true = now
        self._boot_wall = self._saved_wall
        self._sync_at = None if sync_after_s is None else now + sync_after_s

    def _wall_at(self, true: float) -> float:
        if self._sync_at is not None and true >= self._sync_at:
            return true + self.wall_step_s
        return self._boot_wall + (true - self._boot_true) * self._rate + self.wall_step_s
