"""Files the daemon keeps beside its buffer: the status snapshot and the run marker.

Both are written atomically (temporary file + rename), so a reader never sees half a file. Neither is
fsynced: they describe the moment, and the next round rewrites them; the SD card is spared.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
RUN_MARKER = "run.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it is missing or unreadable (a crash left nothing usable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartKind:
    """Why the agent is starting, judged from the previous run's marker and the boot id."""

    reason: str  # first_start | restart | crash | reboot | power_cut
    previous_boot_id: str | None


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
    path = state_dir / RUN_MARKER
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump({"boot_id": boot_id, "clean": clean, "pid": os.getpid()}, handle)
        handle.flush()
        # This one is fsynced: it is how a power cut is told apart from a clean stop.
        os.fsync(handle.fileno())
    tmp.replace(path)
