"""The scheduled speed test as a probe: returns nothing until a test is due, then runs it.

Schedule: at most `runs_per_day` tests a UTC day, one in each equal share of the day at a random
offset seeded by site id and date, so a province's sites do not all test at once and each site's
times move from day to day. A due test waits while the hotspot's users are busy (LAN rx+tx over the
last round above the threshold) and is tried again after `retry_after_s`; slots missed while the
agent was down or the clock was wrong collapse into one test. Every test fits the data budget first.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from urllib.parse import urlsplit

from agent.clock import Clock
from agent.config.schema import SpeedtestConfig
from agent.probes.base import ProbeError
from agent.probes.speedtest.budget import BudgetError, DataBudget
from agent.probes.speedtest.transport import (
    Direction,
    HttpTransport,
    Transfer,
    Transport,
    body_allowance,
    wire_bytes,
)
from agent.probes.throughput import CounterSource, counter_delta, psutil_counters
from agent.reading import Sample

DAY_S = 86_400.0
MB = 1_000_000  # metered plans count decimal megabytes
# Below this a test measures TCP slow start, not the link: not worth the bytes.
MIN_TEST_BYTES = 256 * 1024


def slot_offsets(site_id: str, day: str, runs: int) -> list[float]:
    """Seconds after midnight UTC of the day's test slots: one per equal share of the day."""
    rng = random.Random(f"{site_id}/{day}")  # a str seed is hashed stably across runs
    share = DAY_S / runs
    return [index * share + rng.uniform(0, share) for index in range(runs)]


def _midnight(day: str) -> float:
    # Not calendar.timegm(time.strptime(...)): strptime imports calendar and locale's tables,
    # 0.2 MB of the daemon's RSS; datetime is loaded anyway.
    midnight = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.UTC)
    return midnight.timestamp()


class SpeedtestProbe:
    """`speedtest.*` readings when a test ran; `event.speedtest_deferred|skipped|failed` when not."""

    name = "speedtest"

    def __init__(
        self,
        config: SpeedtestConfig,
        *,
        site_id: str,
        clock: Clock,
        budget: DataBudget,
        lan_interface: str | None = None,
        counters: CounterSource = psutil_counters,
        transport: Transport | None = None,
    ) -> None:
        self._config = config
        self._site_id = site_id
        self._clock = clock
        self._budget = budget
        self._lan = lan_interface
        self._counters = counters
        self._transport = transport or HttpTransport()
        self._last_lan: tuple[float, int] | None = None
        self._retry_at = float("-inf")

    def collect(self) -> list[Sample]:
        if not self._config.enabled or self._config.url_download is None:
            return []
        lan_bps = self._lan_rate()  # every round, so the rate always covers the last round
        if self._clock.monotonic() < self._retry_at:
            return []
        wall = self._clock.wall()
        due = self.due_slots(wall)
        if not due:
            return []
        if self._lan is not None and lan_bps is None:
            return []  # no traffic baseline yet: decide next round
        if lan_bps is not None and lan_bps > self._config.busy_threshold_bps:
            self._retry_at = self._clock.monotonic() + self._config.retry_after_s
            tags = {"reason": "busy", "lan_bps": str(round(lan_bps))}
            return [Sample(metric="event.speedtest_deferred", value=1.0, tags=tags)]
        return self.run(slots=due, trigger="schedule")

    def due_slots(self, wall: float) -> tuple[int, ...]:
        ledger = self._budget.ledger(wall)
        start = _midnight(ledger.day)
        offsets = slot_offsets(self._site_id, ledger.day, self._config.runs_per_day)
        return tuple(
            index
            for index, offset in enumerate(offsets)
            if start + offset <= wall and index not in ledger.slots_done
        )

    def _lan_rate(self) -> float | None:
        if self._lan is None:
            return None
        now = self._clock.monotonic()
        counters = self._counters().get(self._lan)
        if counters is None:
            self._last_lan = None
            return None
        total = counters.rx_bytes + counters.tx_bytes
        previous, self._last_lan = self._last_lan, (now, total)
        if previous is None or now <= previous[0]:
            return None
        # rx and tx wrap separately on 32-bit kernels; their sum wraps like one counter would not,
        # but a wrap only makes one round's rate look small, never a test run over budget.
        return counter_delta(previous[1], total) * 8 / (now - previous[0])

    def run(self, *, slots: Sequence[int] = (), trigger: str = "manual") -> list[Sample]:
        """Run a test now, within the budget whatever the schedule says. Raise ProbeError when no
        reservation could be recorded."""
        config = self._config
        if config.url_download is None:
            raise ProbeError("speedtest.url_download is not set")
        wall = self._clock.wall()
        plan: list[tuple[Direction, str]] = [("download", config.url_download)]
        if config.url_upload is not None:
            plan.append(("upload", config.url_upload))
        remaining = self._budget.remaining(wall)
        cap = min(int(config.max_mb * MB), body_allowance(remaining // len(plan)))
        tags = {"trigger": trigger, "server": urlsplit(config.url_download).hostname or ""}
        try:
            if cap < MIN_TEST_BYTES:
                self._budget.mark_slots(wall, tuple(slots))
                skip_tags = {**tags, "reason": "budget", "remaining_bytes": str(remaining)}
                return [Sample(metric="event.speedtest_skipped", value=1.0, tags=skip_tags)]
            reservation = self._budget.reserve(
                wall, wire_bytes(cap) * len(plan), slots=tuple(slots)
            )
        except BudgetError as err:
            raise ProbeError(f"speed test not run: {err}") from err
        results = [
            self._transport.transfer(direction, url, max_bytes=cap, max_seconds=config.max_seconds)
            for direction, url in plan
        ]
        # Range and the byte cap bound what the far end can send: a higher figure is our own
        # conservative guess of bytes in flight at close, not bytes that can have been used.
        spent = sum(min(r.cost_bytes, wire_bytes(cap)) for r in results)
        try:
            self._budget.settle(self._clock.wall(), reservation, spent)
        except BudgetError as err:
            raise ProbeError(f"speed test ran but its cost was not recorded: {err}") from err
        return self._samples(results, spent, tags)

    def _samples(self, results: list[Transfer], spent: int, tags: dict[str, str]) -> list[Sample]:
        samples: list[Sample] = []
        for result in results:
            d = result.direction
            if result.error is not None:
                fail_tags = {**tags, "direction": d, "error": result.error[:120]}
                samples.append(Sample(metric="event.speedtest_failed", value=1.0, tags=fail_tags))
                continue
            samples.append(
                Sample(metric=f"speedtest.{d}_bytes", value=result.body_bytes, tags=tags)
            )
            samples.append(
                Sample(metric=f"speedtest.{d}_s", value=round(result.seconds, 3), tags=tags)
            )
            if result.bps is not None:
                samples.append(
                    Sample(metric=f"speedtest.{d}_bps", value=round(result.bps, 1), tags=tags)
                )
        wall = self._clock.wall()
        ledger = self._budget.ledger(wall)
        samples += [
            Sample(metric="speedtest.cost_bytes", value=spent, tags=tags),
            Sample(metric="speedtest.budget_day_used_bytes", value=ledger.day_bytes, tags=tags),
            Sample(metric="speedtest.budget_month_used_bytes", value=ledger.month_bytes, tags=tags),
        ]
        return samples
