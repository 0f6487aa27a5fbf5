"""`village-agent status`: what the running daemon is doing, from the files it keeps in state_dir.

Read-only: the status file is replaced atomically by the daemon, and the buffer is opened with
`mode=ro`, so this works at any moment while the daemon runs and changes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.buffer import BufferError
from agent.bufferview import Backlog, BufferView, NoBuffer
from agent.clock import read_boot_id
from agent.compose import status_path
from agent.config import Config
from agent.status import RUN_MARKER, read_json

EX_RUNNING = 0
EX_NOT_RUNNING = 3  # LSB's "program is not running", as `systemctl status` uses it

State = Literal["running", "stale", "stopped", "never"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonState:
    """Whether a daemon runs, judged from its status file, its pid and this boot's id."""

    state: State
    status: dict[str, Any] | None
    age_s: float | None  # seconds since the daemon last wrote its status


def fresh_within_s(interval_s: float) -> float:
    """The daemon rewrites its status after every round; two missed rounds and a margin is stale."""
    return 2 * interval_s + 30.0


def _pid_alive(proc: Path, pid: object) -> bool:
    return isinstance(pid, int) and pid > 0 and (proc / str(pid)).is_dir()


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
    status = read_json(status_file)
    marker = read_json(state_dir / RUN_MARKER)
    if status is None:
        # A status file on a tmpfs is gone after a reboot; the run marker on the card is not.
        state: State = "never" if marker is None else "stopped"
        return DaemonState(state=state, status=None, age_s=None)
    marker = marker or {}
    updated = status.get("updated_at")
    age = now - updated if isinstance(updated, int | float) else None
    this_boot = boot_id or read_boot_id(proc / "sys/kernel/random/boot_id")
    # A clean stop marks run.json before the process is gone: it is stopping, not running.
    stopped_cleanly = marker.get("clean") is True and marker.get("pid") == status.get("pid")
    other_boot = status.get("boot_id") not in (None, this_boot)
    if other_boot or stopped_cleanly or not _pid_alive(proc, status.get("pid")):
        return DaemonState(state="stopped", status=status, age_s=age)
    # A wall clock stepped backwards makes the age negative: that still means "just written".
    if age is not None and age <= fresh_within_s(interval_s):
        return DaemonState(state="running", status=status, age_s=age)
    return DaemonState(state="stale", status=status, age_s=age)


def read_backlog(state_dir: Path) -> Backlog | str:
    """The buffer's backlog, or a sentence saying why it could not be read."""
    try:
        with BufferView.open(state_dir) as view:
            return view.backlog()
    except NoBuffer:
        return "no buffer yet"
    except BufferError as err:
        return str(err)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _published(age_s: float | None) -> str:
    return "none acknowledged yet" if age_s is None else f"{_ago(age_s)} (acknowledged)"


def _since(now: float, ts: object) -> float | None:
    return now - ts if isinstance(ts, int | float) else None


def report(config: Config, *, now: float | None = None) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready object."""
    now = time.time() if now is None else now
    judged = daemon_state(
        config.state_dir, status_path(config), interval_s=config.interval_s, now=now
    )
    status = judged.status or {}
    backlog = read_backlog(config.state_dir)
    out: dict[str, Any] = {
        "site": config.site_id,
        "state_dir": str(config.state_dir),
        "daemon": judged.state,
        "pid": status.get("pid"),
        "version": status.get("version"),
        "uptime_s": _since(now, status.get("started_at")) if judged.state == "running" else None,
        "status_age_s": judged.age_s,
        "last_round_age_s": _since(now, status.get("last_round_at")),
        "last_publish_age_s": _since(now, status.get("last_ack_at")),
        "broker_state": status.get("broker_state"),
        "last_error": status.get("last_error"),
        "in_flight": status.get("in_flight"),
        "clock_synced": status.get("clock_synced"),
    }
    if isinstance(backlog, Backlog):
        oldest = backlog.oldest_ts_ms
        out["backlog"] = backlog.count
        out["oldest_unsent_age_s"] = None if oldest is None else now - oldest / 1000
        out["oldest_unsent_time_trusted"] = backlog.oldest_synced
        out["dropped_total"] = backlog.dropped_total
    else:
        out["backlog"] = None
        out["buffer_error"] = backlog
        out["dropped_total"] = status.get("dropped_total")
    return out


_HEADLINES = {
    "running": "village-agent is running",
    "stale": "village-agent has a process but its status is old: it may be hung",
    "stopped": "village-agent is NOT running (this is what it last reported)",
    "never": "village-agent is NOT running: it has never written a status here",
}


def render_text(out: dict[str, Any]) -> str:
    """The report for a person at a console."""
    reported = out["pid"] is not None
    headline = _HEADLINES[out["daemon"]]
    if out["daemon"] == "stopped" and not reported:
        headline = "village-agent is NOT running: it has not run since the gateway started"
    lines = [f"{headline}  (site {out['site']}, {out['state_dir']})"]
    if reported:
        up = out["uptime_s"]
        uptime = "-" if up is None else _ago(up).removesuffix(" ago")
        lines += [
            f"  pid / version      {out['pid']} / {out['version']}",
            f"  uptime             {uptime}",
            f"  last round         {_ago(out['last_round_age_s'])}",
            f"  last publish       {_published(out['last_publish_age_s'])}",
            f"  broker             {out['broker_state']}",
        ]
    if out["backlog"] is None:
        lines.append(f"  backlog            unknown: {out.get('buffer_error')}")
    else:
        oldest = out["oldest_unsent_age_s"]
        age = "-" if oldest is None else _ago(oldest).replace(" ago", " old")
        if out["oldest_unsent_time_trusted"] is False:
            age += " (taken before the clock synced: time not trusted)"
        lines.append(f"  backlog            {out['backlog']} readings unsent, oldest {age}")
    lines.append(f"  readings dropped   {out['dropped_total'] or 0}")
    if reported:
        lines.append(f"  last error         {out['last_error'] or '-'}")
    if out["daemon"] != "running":
        lines.append("  next: systemctl status village-agent; journalctl -u village-agent -n 50")
    return "\n".join(lines)


def run_status(config: Config, *, as_json: bool) -> int:
    out = report(config)
    print(json.dumps(out, sort_keys=True) if as_json else render_text(out))
    return EX_RUNNING if out["daemon"] == "running" else EX_NOT_RUNNING
