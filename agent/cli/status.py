"""`village-agent status`: what the running daemon is doing, from the files it keeps in state_dir.

Read-only: the status file is replaced atomically by the daemon, and the buffer is opened with
`mode=ro`, so this works at any moment while the daemon runs and changes nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from agent.buffer.readonly import Backlog, read_backlog
from agent.cli.exits import EX_NOT_RUNNING, EX_OK
from agent.config.schema import Config
from agent.daemon.state import StatusRecord, daemon_state
from agent.files import status_path


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
        config.state_dir,
        status_path(config.state_dir, config.status_dir),
        interval_s=config.interval_s,
        now=now,
    )
    status = judged.status or StatusRecord()
    backlog = read_backlog(config.state_dir)
    out: dict[str, Any] = {
        "site": config.site_id,
        "state_dir": str(config.state_dir),
        "daemon": judged.state,
        "pid": status.pid if judged.status is not None else None,
        "version": status.version,
        "uptime_s": _since(now, status.started_at) if judged.state == "running" else None,
        "status_age_s": judged.age_s,
        "last_round_age_s": _since(now, status.last_round_at),
        "last_publish_age_s": _since(now, status.last_ack_at),
        "broker_state": status.broker_state,
        "last_error": status.last_error,
        "in_flight": status.in_flight,
        "clock_synced": status.clock_synced,
        "confirm": {
            "seen": status.confirm_seen,
            "epoch": status.confirmed_epoch,
            "through": status.confirmed_through,
            "missing": status.confirm_missing,
            "last_ack_age_s": _since(now, status.last_confirm_at),
            "unconfirmed": status.unconfirmed,
            "released_total": status.unconfirmed_released_total,
        },
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
        out["dropped_total"] = status.dropped_total
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
        lines += _confirm_lines(out["confirm"])
    if reported:
        lines.append(f"  last error         {out['last_error'] or '-'}")
    if out["daemon"] != "running":
        lines.append("  next: systemctl status village-agent; journalctl -u village-agent -n 50")
    return "\n".join(lines)


def _confirm_lines(confirm: dict[str, Any]) -> list[str]:
    if confirm["seen"] is None:
        return []
    if not confirm["seen"]:
        return [
            "  collector          no collector confirmation seen: readings are deleted on the "
            "broker's acknowledgement"
        ]
    through = "-" if confirm["through"] is None else confirm["through"]
    lines = [
        f"  collector          stored through seq {through} (epoch {confirm['epoch'] or '-'}), "
        f"last ack {_ago(confirm['last_ack_age_s'])}",
        f"  unconfirmed        {confirm['unconfirmed']} readings delivered, awaiting confirmation"
        f" ({confirm['released_total']} released unconfirmed)",
    ]
    if confirm["missing"]:
        lines.append(f"  collector missing  {confirm['missing']} (being sent again)")
    return lines


def run_status(config: Config, *, as_json: bool) -> int:
    out = report(config)
    print(json.dumps(out, sort_keys=True) if as_json else render_text(out))
    return EX_OK if out["daemon"] == "running" else EX_NOT_RUNNING
