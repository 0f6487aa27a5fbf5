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
from agent.cli.messages import Lang, text
from agent.config.schema import Config
from agent.daemon.state import StatusRecord, daemon_state
from agent.files import status_path


def _span(seconds: float, lang: Lang) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return text("status.seconds", lang, n=seconds)
    if seconds < 7200:
        return text("status.minutes", lang, n=seconds / 60)
    if seconds < 172800:
        return text("status.hours", lang, n=seconds / 3600)
    return text("status.days", lang, n=seconds / 86400)


def _ago(seconds: float | None, lang: Lang) -> str:
    if seconds is None:
        return text("status.never_time", lang)
    return text("status.ago", lang, span=_span(seconds, lang))


def _published(age_s: float | None, lang: Lang) -> str:
    if age_s is None:
        return text("status.none_acked", lang)
    return text("status.acked", lang, when=_ago(age_s, lang))


def _protocol(out: dict[str, Any], lang: Lang) -> str:
    version, why = out["broker_protocol"], out["broker_protocol_why"]
    if version is None:
        return ""
    if why in ("fallback", "remembered"):
        return " " + text("status.protocol_fallback", lang, version=version)
    return f" (MQTT {version})"


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
        "broker_protocol": status.broker_protocol,
        "broker_protocol_why": status.broker_protocol_why,
        "last_error": status.last_error,
        "last_disconnect": status.last_disconnect,
        "last_disconnect_age_s": _since(now, status.last_disconnect_at),
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


def render_text(out: dict[str, Any], lang: Lang = "en") -> str:
    """The report for a person at a console, in `lang`."""
    reported = out["pid"] is not None
    state = out["daemon"]
    if state == "stopped" and not reported:
        state = "not_since_boot"
    where = text("status.where", lang, site=out["site"], state_dir=out["state_dir"])
    lines = [f"{text('status.' + state, lang)}  {where}"]

    def row(label: str, value: object) -> None:
        lines.append(f"  {text('status.' + label, lang):<18} {value}")

    if reported:
        up = out["uptime_s"]
        row("pid_version", f"{out['pid']} / {out['version']}")
        row("uptime", "-" if up is None else _span(up, lang))
        row("last_round", _ago(out["last_round_age_s"], lang))
        row("last_publish", _published(out["last_publish_age_s"], lang))
        row("broker", f"{out['broker_state']}{_protocol(out, lang)}")
    if out["backlog"] is None:
        row("backlog", text("status.backlog_unknown", lang, error=out.get("buffer_error")))
    else:
        oldest = out["oldest_unsent_age_s"]
        age = "-" if oldest is None else text("status.old", lang, span=_span(oldest, lang))
        if out["oldest_unsent_time_trusted"] is False:
            age += text("status.untrusted", lang)
        row("backlog", text("status.unsent", lang, count=out["backlog"], age=age))
    row("dropped", out["dropped_total"] or 0)
    if reported:
        row("last_error", out["last_error"] or "-")
        if out["last_disconnect"]:
            ago = _ago(out["last_disconnect_age_s"], lang)
            row("last_disconnect", f"{ago}: {out['last_disconnect']}")
        lines += _confirm_lines(out["confirm"], lang)
    if out["daemon"] != "running":
        lines.append("  " + text("status.next", lang))
    return "\n".join(lines)


def _confirm_lines(confirm: dict[str, Any], lang: Lang) -> list[str]:
    if confirm["seen"] is None:
        return []
    label = f"  {text('status.collector', lang):<18} "
    if not confirm["seen"]:
        return [label + text("status.confirm_never", lang)]
    through = "-" if confirm["through"] is None else confirm["through"]
    lines = [
        label
        + text(
            "status.confirm_through",
            lang,
            through=through,
            epoch=confirm["epoch"] or "-",
            when=_ago(confirm["last_ack_age_s"], lang),
        ),
        f"  {text('status.unconfirmed', lang):<18} "
        + text(
            "status.unconfirmed_count",
            lang,
            count=confirm["unconfirmed"],
            released=confirm["released_total"],
        ),
    ]
    if confirm["missing"]:
        lines.append(label + text("status.confirm_missing", lang, missing=confirm["missing"]))
    return lines


def run_status(config: Config, *, as_json: bool, lang: Lang = "en") -> int:
    out = report(config)
    print(json.dumps(out, sort_keys=True) if as_json else render_text(out, lang))
    return EX_OK if out["daemon"] == "running" else EX_NOT_RUNNING
