"""Where the agent keeps its files and how it writes them: the only owner of the file names in
`state_dir` and `status_dir`, and of the two ways a small JSON file is replaced.

`replace_json` suits files that describe the moment (the status snapshot, import progress): a
reader never sees half a file, and the SD card is spared an fsync. `replace_json_durably` suits
files a power cut must not roll back (the run marker, the speed test's ledger): the file and the
rename both reach the card before it returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BUFFER_FILE = "buffer.sqlite"
STATUS_FILE = "status.json"
RUN_MARKER = "run.json"
LOCK_FILE = "agent.lock"
LEDGER_FILE = "speedtest.json"  # the speed test's data budget
PROTOCOL_FILE = "mqtt_protocol.json"  # per broker, the MQTT version `broker.protocol: auto` chose
HELD_LOST_FILE = "held-lost.json"  # readings a stop took from memory before they reached the disk
HISTORY_FILE = "history.jsonl"  # the technician's 14 days: closed hours, outages, power cuts
HISTORY_NOW_FILE = "history-now.json"  # the hour being folded and what a power cut would lose
QUARANTINE_INFIX = ".corrupt-"  # buffer.sqlite.corrupt-<stamp>: a damaged buffer kept aside


def buffer_path(state_dir: Path) -> Path:
    return state_dir / BUFFER_FILE


def status_path(state_dir: Path, status_dir: Path | None) -> Path:
    """Where the daemon keeps its status snapshot and `status`/`diag` read it."""
    return (status_dir or state_dir) / STATUS_FILE


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def replace_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` through a temporary file and a rename; not fsynced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_encode(data), encoding="utf-8")
    tmp.replace(path)


def replace_json_durably(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` so that after a power cut it reads either the old or the new file,
    never one older than the last call: the file and its directory are fsynced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(_encode(data))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it is missing or unreadable (a crash left nothing usable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: `[[[[...` thousands deep
        return None
    return data if isinstance(data, dict) else None
