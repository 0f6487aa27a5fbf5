"""The speed test's data budget: bytes spent per UTC day and month, kept on disk across restarts.

Village links are metered by the gigabyte, so the budget is a hard limit. A test *reserves* its
worst-case cost before it sends a byte (written and fsynced), and *settles* to what it measured
afterwards; a power cut in the middle leaves the whole reservation charged, never less than was
spent. The ledger also remembers which of the day's scheduled slots were used, so a restart does not
run a slot twice.

Day and month come from the wall clock, which on a gateway without RTC may start at 1970 or at a
saved time after a power cut: the ledger never moves back to an earlier period, so a clock that goes
backwards cannot open a fresh budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from agent.files import replace_json_durably

log = structlog.get_logger("agent")


class BudgetError(Exception):
    """The ledger could not be written; no test may run without a durable reservation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    day: str  # YYYY-MM-DD, UTC
    day_bytes: int
    month: str  # YYYY-MM, UTC
    month_bytes: int
    slots_done: tuple[int, ...] = field(default=())  # of `day`'s schedule


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    day: str
    month: str
    nbytes: int


def periods(wall: float) -> tuple[str, str]:
    day = time.strftime("%Y-%m-%d", time.gmtime(wall))
    return day, day[:7]


class DataBudget:
    """Limits in bytes per day and per month; the ledger lives in `path`."""

    def __init__(self, path: Path, *, per_day_bytes: int, per_month_bytes: int) -> None:
        self._path = path
        self.per_day_bytes = per_day_bytes
        self.per_month_bytes = per_month_bytes

    def ledger(self, wall: float) -> Ledger:
        """The ledger as of `wall`, rolled over to a new day or month when one began."""
        stored = self._load(wall)
        day, month = periods(wall)
        if day > stored.day:
            stored = replace(stored, day=day, day_bytes=0, slots_done=())
        if month > stored.month:
            stored = replace(stored, month=month, month_bytes=0)
        return stored

    def remaining(self, wall: float) -> int:
        ledger = self.ledger(wall)
        return max(
            0,
            min(
                self.per_day_bytes - ledger.day_bytes,
                self.per_month_bytes - ledger.month_bytes,
            ),
        )

    def reserve(self, wall: float, nbytes: int, *, slots: tuple[int, ...] = ()) -> Reservation:
        """Charge `nbytes` now and mark `slots` of today's schedule used. Raise BudgetError when
        the reservation exceeds what is left or cannot be made durable."""
        if nbytes > self.remaining(wall):
            raise BudgetError(f"{nbytes} bytes exceed the {self.remaining(wall)} left")
        ledger = self.ledger(wall)
        done = tuple(sorted(set(ledger.slots_done) | set(slots)))
        self._save(
            replace(
                ledger,
                day_bytes=ledger.day_bytes + nbytes,
                month_bytes=ledger.month_bytes + nbytes,
                slots_done=done,
            )
        )
        return Reservation(day=ledger.day, month=ledger.month, nbytes=nbytes)

    def mark_slots(self, wall: float, slots: tuple[int, ...]) -> None:
        """Record today's slots as used without charging (a test skipped for want of budget)."""
        ledger = self.ledger(wall)
        self._save(replace(ledger, slots_done=tuple(sorted(set(ledger.slots_done) | set(slots)))))

    def settle(self, wall: float, reservation: Reservation, spent: int) -> None:
        """Replace the reservation by what the test spent, in the periods it was charged to."""
        ledger = self.ledger(wall)
        delta = spent - reservation.nbytes
        day_bytes = ledger.day_bytes + delta if ledger.day == reservation.day else ledger.day_bytes
        month_bytes = ledger.month_bytes
        if ledger.month == reservation.month:
            month_bytes += delta
        self._save(replace(ledger, day_bytes=max(0, day_bytes), month_bytes=max(0, month_bytes)))

    def _load(self, wall: float) -> Ledger:
        day, month = periods(wall)
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            return Ledger(
                day=str(raw["day"]),
                day_bytes=int(raw["day_bytes"]),
                month=str(raw["month"]),
                month_bytes=int(raw["month_bytes"]),
                slots_done=tuple(int(s) for s in raw.get("slots_done", [])),
            )
        except FileNotFoundError:
            return Ledger(day=day, day_bytes=0, month=month, month_bytes=0)
        except (OSError, ValueError, KeyError, TypeError) as err:
            # What was spent is unknown: assume everything, until the period rolls over.
            log.warning(
                "speedtest_ledger_unreadable",
                file=str(self._path),
                error=str(err),
                advice="speed tests resume next month; delete the file to reset the budget",
            )
            return Ledger(
                day=day,
                day_bytes=self.per_day_bytes,
                month=month,
                month_bytes=self.per_month_bytes,
            )

    def _save(self, ledger: Ledger) -> None:
        data: dict[str, object] = {
            "day": ledger.day,
            "day_bytes": ledger.day_bytes,
            "month": ledger.month,
            "month_bytes": ledger.month_bytes,
            "slots_done": list(ledger.slots_done),
        }
        try:
            replace_json_durably(self._path, data)
        except OSError as err:
            raise BudgetError(f"cannot write {self._path}: {err.strerror}") from err
