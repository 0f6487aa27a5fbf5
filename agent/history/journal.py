"""The history's files in state_dir, written by the daemon and read by `status --history`.

`history.jsonl` is appended one JSON object per line: a closed hour (`{"hour": {...}}`), an outage
that ended (`{"outage": start, "s": seconds, "at": when recorded}`, start null when the clock was
not set then) and a power cut (`{"power_cut": last moment alive, "back": boot, "at": ...}`). One
short append an hour plus one per event: the SD card is spared. `history-now.json` holds the hour
being folded, the outage under way and the last moment known alive; it is replaced every five
minutes and at a stop, never fsynced, so a power cut costs at most those minutes of the open hour
(and dates the cut's start to within them), never a closed hour.

Bounded: an hour closing drops what is older than 14 days, and at most MAX_EVENTS outages and
power cuts are kept (a flapping link), the older ones counted. Times are wall-clock seconds taken
only from rounds whose clock was set: a gateway without an RTC boots with a wrong time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.files import HISTORY_FILE, HISTORY_NOW_FILE, fsync_dir, read_json, replace_json
from agent.history.hours import Hour, fold, hour_of
from agent.reading import Sample, Stamp

KEEP_S = 14 * 86_400
MAX_EVENTS = 1_000
NOW_EVERY_S = 300.0
# A line longer than this is not the agent's: the reader skips it unread.
LINE_MAX_BYTES = 4_096


@dataclass(frozen=True, slots=True, kw_only=True)
class Outage:
    start: float | None  # None: the clock was not set when it began
    duration_s: float
    ongoing: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerCut:
    down_from: float | None  # the last moment known alive (to within NOW_EVERY_S); None unknown
    back: float  # when the gateway booted again


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What the files hold: closed hours and the open one, outages, power cuts."""

    hours: tuple[Hour, ...] = ()
    outages: tuple[Outage, ...] = ()
    power_cuts: tuple[PowerCut, ...] = ()
    events_dropped: int = 0
    last_alive: float | None = None


# Times and counts outside this are not the agent's (a damaged or edited file): read as absent.
_PLAUSIBLE = 4e9


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    return number if math.isfinite(number) and 0 <= number <= _PLAUSIBLE else None


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every well-formed line; a torn last line (a power cut mid-append) and junk are skipped."""
    out: list[dict[str, Any]] = []
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if len(raw) > LINE_MAX_BYTES:
                    continue
                try:
                    item = json.loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(item, dict):
                    out.append(item)
    except OSError:
        return []
    return out


def _event_time(line: dict[str, Any]) -> float | None:
    return _number(line.get("at"))


@dataclass(slots=True)
class _Now:
    """The part that changes every round, kept in history-now.json."""

    open_hour: Hour | None = None
    down_since: float | None = None
    last_alive: float | None = None
    cut_from: float | None = None  # a power cut seen at start, waiting for the clock to be set
    cut_pending: bool = False
    events_dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "open_hour": None if self.open_hour is None else self.open_hour.to_json(),
            "down_since": self.down_since,
            "last_alive": self.last_alive,
            "cut_from": self.cut_from,
            "cut_pending": self.cut_pending,
            "events_dropped": self.events_dropped,
        }

    @classmethod
    def read(cls, path: Path) -> _Now:
        data = read_json(path) or {}
        now = cls()
        hour = data.get("open_hour")
        if isinstance(hour, dict):
            try:
                now.open_hour = Hour.from_json(hour)
            except (KeyError, TypeError, ValueError):
                now.open_hour = None
        now.down_since = _number(data.get("down_since"))
        now.last_alive = _number(data.get("last_alive"))
        now.cut_from = _number(data.get("cut_from"))
        now.cut_pending = data.get("cut_pending") is True
        dropped = _number(data.get("events_dropped"))
        now.events_dropped = int(dropped) if dropped is not None and dropped > 0 else 0
        return now


def read_history(state_dir: Path, *, now: float) -> Record:
    """The history as `status --history` shows it: closed hours and the open one, the outages
    (one under way last), the power cuts, within the last 14 days of `now`."""
    current = _Now.read(state_dir / HISTORY_NOW_FILE)
    cutoff = now - KEEP_S
    hours: list[Hour] = []
    outages: list[Outage] = []
    cuts: list[PowerCut] = []
    for line in _lines(state_dir / HISTORY_FILE):
        if isinstance(line.get("hour"), dict):
            try:
                hour = Hour.from_json(line["hour"])
            except (KeyError, TypeError, ValueError):
                continue
            if _number(hour.start) is not None and hour.start >= hour_of(cutoff):
                hours.append(hour)
            continue
        at = _event_time(line)
        if at is not None and at < cutoff:
            continue  # older than 14 days; an outage timed without a clock (at null) stays
        duration = _number(line.get("s"))
        back = _number(line.get("back"))
        if "outage" in line and duration is not None and duration >= 0:
            outages.append(Outage(start=_number(line["outage"]), duration_s=duration))
        elif "power_cut" in line and back is not None:
            cuts.append(PowerCut(down_from=_number(line["power_cut"]), back=back))
    # The file may hold an hour's events beyond the bound until the next hour prunes it.
    outages, cuts = outages[-MAX_EVENTS:], cuts[-MAX_EVENTS:]
    open_hour = current.open_hour
    plausible = open_hour is not None and _number(open_hour.start) is not None
    if open_hour is not None and plausible and all(h.start != open_hour.start for h in hours):
        hours.append(open_hour)
    if current.down_since is not None:
        outages.append(
            Outage(
                start=current.down_since,
                duration_s=max(0.0, (current.last_alive or now) - current.down_since),
                ongoing=True,
            )
        )
    return Record(
        hours=tuple(sorted(hours, key=lambda h: h.start)),
        outages=tuple(outages),
        power_cuts=tuple(cuts),
        events_dropped=current.events_dropped,
        last_alive=current.last_alive,
    )


def _end_torn_line(path: Path) -> None:
    """A power cut in the middle of an append leaves a line without its end: end it, so that the
    next append starts a line of its own instead of joining the junk."""
    try:
        with path.open("rb+") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
    except OSError:
        return  # no file yet, or the card refuses: the reader skips a torn line anyway


def _power_cut(samples: Sequence[Sample]) -> bool:
    return any(
        s.metric == "event.agent_start" and s.tags.get("reason") == "power_cut" for s in samples
    )


def _value(samples: Sequence[Sample], metric: str) -> float | None:
    return next((s.value for s in samples if s.metric == metric), None)


class History:
    """The daemon's writer: `note()` after every round, `close()` at a clean stop. A failure to
    write (a full card) is the caller's to log: the history is never worth a reading."""

    def __init__(self, state_dir: Path, *, lan_interface: str | None) -> None:
        self._file = state_dir / HISTORY_FILE
        self._now_file = state_dir / HISTORY_NOW_FILE
        self._lan = lan_interface
        self._now = _Now.read(self._now_file)
        self._flushed_at: float | None = None  # monotonic seconds of the last flush
        self._unpruned = 0  # lines appended without a time since the last prune
        _end_torn_line(self._file)

    def note(self, stamp: Stamp, samples: Sequence[Sample]) -> None:
        now = self._now
        if any(s.metric == "event.agent_start" for s in samples):
            # The outage tracker starts afresh with the process: an outage under way before
            # the stop can no longer end in an event, so it is not shown as going on.
            now.down_since = None
        if _power_cut(samples):
            now.cut_pending, now.cut_from = True, now.last_alive
        if not stamp.synced:
            # No trustworthy time: only what needs none is kept (an outage's duration).
            for sample in samples:
                if sample.metric == "event.outage_end_s":
                    self._append({"outage": None, "s": sample.value, "at": None})
                    now.down_since = None
                    self._unpruned += 1
            if self._unpruned > MAX_EVENTS // 10:
                self._prune(None)  # a gateway whose clock is never set closes no hour
            return
        wall = stamp.ts_ms / 1000
        changed = False
        if now.cut_pending:
            uptime = _value(samples, "uptime.system_s")
            back = wall - uptime if uptime is not None else wall
            self._append({"power_cut": now.cut_from, "back": back, "at": back})
            now.cut_pending, now.cut_from, changed = False, None, True
        start = hour_of(wall)
        if now.open_hour is not None and now.open_hour.start != start:
            self._append({"hour": now.open_hour.to_json()})
            now.open_hour = None
            self._prune(wall)
            changed = True
        now.open_hour = fold(now.open_hour or Hour(start=start), samples, lan_interface=self._lan)
        for sample in samples:
            if sample.metric == "event.outage_start":
                now.down_since, changed = wall, True
            elif sample.metric == "event.outage_end_s":
                self._append({"outage": wall - sample.value, "s": sample.value, "at": wall})
                now.down_since, changed = None, True
        now.last_alive = wall
        mono = stamp.mono_ms / 1000  # a wall clock stepped back must not stop the flushes
        if changed or self._flushed_at is None or abs(mono - self._flushed_at) >= NOW_EVERY_S:
            self.flush()
            self._flushed_at = mono

    def flush(self) -> None:
        replace_json(self._now_file, self._now.to_json())

    def close(self) -> None:
        self.flush()

    def _append(self, line: dict[str, Any]) -> None:
        with self._file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")

    def _prune(self, wall: float | None) -> None:
        """Drop what is older than 14 days of `wall` (None: nothing by age) and events beyond
        MAX_EVENTS. A rewrite, fsynced: rare, and it must not lose the 14 days to a power cut."""
        self._unpruned = 0
        lines = _lines(self._file)
        cutoff = -math.inf if wall is None else wall - KEEP_S
        kept: list[dict[str, Any]] = []
        for line in lines:
            if isinstance(line.get("hour"), dict):
                start = _number(line["hour"].get("start"))
                if start is not None and start >= hour_of(cutoff):
                    kept.append(line)
                continue
            at = _event_time(line)
            if at is None or at >= cutoff:
                kept.append(line)
        events = [i for i, line in enumerate(kept) if "hour" not in line]
        excess = len(events) - MAX_EVENTS
        if excess > 0:
            gone = set(events[:excess])
            kept = [line for i, line in enumerate(kept) if i not in gone]
            self._now.events_dropped += excess
        if len(kept) == len(lines):
            return
        tmp = self._file.with_name(f".{self._file.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, separators=(",", ":")) + "\n" for line in kept)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self._file)
        fsync_dir(self._file.parent)
