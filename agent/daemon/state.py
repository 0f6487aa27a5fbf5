"""The files the daemon keeps for others to read: the status snapshot (`StatusRecord`, rewritten
after every round and on every broker change) and the run marker (how the next start tells a clean
stop from a crash or a power cut). This module is the only one that writes or parses either;
`status`, `diag` and the composition root read them through it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.clock import read_boot_id
from agent.files import HELD_LOST_FILE, RUN_MARKER, read_json, replace_json, replace_json_durably


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRecord:
    """What the daemon last reported about itself. Times are wall-clock seconds (UTC epoch) except
    `oldest_unsent_ts_ms`; None where the daemon has nothing to say (yet)."""

    site: str = ""
    version: str = ""
    config: str = ""  # the config digest, as in the birth message
    pid: int | None = None
    boot_id: str | None = None
    started_at: float | None = None
    updated_at: float | None = None
    last_round_at: float | None = None
    last_ack_at: float | None = None
    broker_state: str | None = None
    broker_protocol: str | None = None  # MQTT version in use: "5" or "3.1.1"
    broker_protocol_why: str | None = None  # configured | default | remembered | fallback
    broker_protocol_detail: str | None = None  # for a fallback: what the broker did with MQTT 5
    last_error: str | None = None  # what keeps readings from flowing now; None while all is well
    last_disconnect: str | None = None  # why the last broker connection ended
    last_disconnect_at: float | None = None
    backlog: int | None = None
    last_seq: int = 0
    epoch: str = ""  # the buffer's seq series that last_seq counts in
    oldest_unsent_ts_ms: int | None = None
    dropped_total: int | None = None
    pending_in_memory: int = 0  # readings held while the buffer refuses writes: lost if it stops
    lost_unrecorded: int = 0  # readings lost from memory, not yet in the buffer's dropped count
    rejected_total: int = 0
    readings_acked: int = 0
    in_flight: int = 0
    clock_synced: bool | None = None
    # The collector's confirmation (agent/buffer/confirm.py). confirm_seen false: no collector
    # ack ever seen, so readings are deleted on the broker's acknowledgement.
    confirm_seen: bool | None = None
    confirmed_epoch: str | None = None
    confirmed_through: int | None = None
    confirm_missing: str = ""  # the ranges the collector lacks: "179-334, 400-400"
    last_confirm_at: float | None = None  # wall time its last ack arrived
    unconfirmed: int = 0  # delivered, kept until confirmed
    unconfirmed_released_total: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusRecord:
        """The record in `data`; a field missing or of the wrong type (an older agent wrote it, or
        someone edited it) takes its default rather than failing the reader."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            value = data.get(item.name)
            if item.name in data and _fits(value, str(item.type)):
                values[item.name] = value
        return cls(**values)

    def write(self, path: Path) -> None:
        """Replace the status file atomically (not fsynced: the next round rewrites it)."""
        replace_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> StatusRecord | None:
        data = read_json(path)
        return None if data is None else cls.from_json(data)


_JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def _fits(value: object, annotation: str) -> bool:
    """Whether a JSON value may stand in a field annotated `annotation` ("int | None", ...)."""
    kinds = [part.strip() for part in annotation.split("|")]
    if value is None or isinstance(value, bool):
        return (value is None and "None" in kinds) or (isinstance(value, bool) and "bool" in kinds)
    return any(isinstance(value, _JSON_TYPES.get(kind, ())) for kind in kinds)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartKind:
    """Why the agent is starting, judged from the previous run's marker and the boot id."""

    reason: str  # first_start | restart | crash | reboot | power_cut
    previous_boot_id: str | None


def read_marker(state_dir: Path) -> dict[str, Any] | None:
    return read_json(state_dir / RUN_MARKER)


def classify_start(marker: dict[str, Any] | None, boot_id: str) -> StartKind:
    """A clean stop leaves `clean: true`. A new boot without it means the power went (or the kernel
    died); the same boot without it means the agent itself was killed or crashed."""
    if marker is None:
        return StartKind(reason="first_start", previous_boot_id=None)
    previous = marker.get("boot_id")
    clean = marker.get("clean") is True
    same_boot = previous == boot_id
    reasons = {(True, True): "restart", (True, False): "crash", (False, True): "reboot"}
    reason = reasons.get((same_boot, clean), "power_cut")
    return StartKind(reason=reason, previous_boot_id=str(previous) if previous else None)


def mark_running(state_dir: Path, boot_id: str, *, clean: bool) -> None:
    """Fsynced: it is how a power cut is told apart from a clean stop."""
    replace_json_durably(
        state_dir / RUN_MARKER, {"boot_id": boot_id, "clean": clean, "pid": os.getpid()}
    )


def save_held_lost(state_dir: Path, readings: int) -> None:
    """Record, beside the buffer, readings a stop takes from memory before they reached the disk:
    the status file may be on a tmpfs that a reboot empties. Fsynced, like the run marker."""
    replace_json_durably(state_dir / HELD_LOST_FILE, {"readings": readings})


def take_held_lost(state_dir: Path, status: StatusRecord | None) -> int:
    """Readings the previous run held in memory and lost (its stop, or its crash), from the file
    beside the buffer or its last status, whichever knows more (both describe the same run); the
    file is removed: from here on the count lives in this run's status until it is recorded."""
    saved = read_json(state_dir / HELD_LOST_FILE) or {}
    readings = saved.get("readings")
    found = readings if isinstance(readings, int) and readings > 0 else 0
    if status is not None:
        found = max(found, status.pending_in_memory + status.lost_unrecorded)
    # On a read-only card it stays: the count may be reported twice, never lost.
    with contextlib.suppress(OSError):
        (state_dir / HELD_LOST_FILE).unlink(missing_ok=True)
    return found


Judged = Literal["running", "stale", "stopped", "never"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonState:
    """Whether a daemon runs, judged from its status file, its pid and this boot's id."""

    state: Judged
    status: StatusRecord | None
    age_s: float | None  # seconds since the daemon last wrote its status


def fresh_within_s(interval_s: float) -> float:
    """The daemon rewrites its status after every round; two missed rounds and a margin is stale."""
    return 2 * interval_s + 30.0


def daemon_state(
    state_dir: Path,
    status_file: Path,
    *,
    interval_s: float,
    now: float,
    proc: Path = Path("/proc"),
    boot_id: str | None = None,
) -> DaemonState:
    """Judge from the status file: `running` (pid alive, this boot, status fresh), `stale` (pid
    alive but the status is old: hung, or the pid was reused), `stopped`, or `never`."""
    status = StatusRecord.read(status_file)
    marker = read_marker(state_dir)
    if status is None:
        # A status file on a tmpfs is gone after a reboot; the run marker on the card is not.
        state: Judged = "never" if marker is None else "stopped"
        return DaemonState(state=state, status=None, age_s=None)
    marker = marker or {}
    age = None if status.updated_at is None else now - status.updated_at
    this_boot = boot_id or read_boot_id(proc / "sys/kernel/random/boot_id")
    # A clean stop marks run.json before the process is gone: it is stopping, not running.
    stopped_cleanly = marker.get("clean") is True and marker.get("pid") == status.pid
    other_boot = status.boot_id not in (None, this_boot)
    pid_alive = status.pid is not None and status.pid > 0 and (proc / str(status.pid)).is_dir()
    if other_boot or stopped_cleanly or not pid_alive:
        return DaemonState(state="stopped", status=status, age_s=age)
    # A wall clock stepped backwards makes the age negative: that still means "just written".
    if age is not None and age <= fresh_within_s(interval_s):
        return DaemonState(state="running", status=status, age_s=age)
    return DaemonState(state="stale", status=status, age_s=age)
