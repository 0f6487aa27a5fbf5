"""`village-agent status --history`: the gateway's last 14 days, for a technician on site with no
internet: each day's backhaul availability, latency, loss and WAN volume, every outage and power
cut with its start and length. Times are the gateway's local time zone (WIB, WITA or WIT)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from agent.cli.exits import EX_OK
from agent.cli.messages import Lang, text
from agent.cli.units import human_bytes
from agent.config.schema import Config
from agent.history.hours import Hour
from agent.history.journal import MAX_EVENTS, Record, read_history


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def _day_rows(hours: Iterable[Hour]) -> list[dict[str, Any]]:
    days: dict[str, list[Hour]] = {}
    for hour in hours:
        days.setdefault(_local(hour.start).date().isoformat(), []).append(hour)
    rows = []
    for day, parts in sorted(days.items()):
        up, down = sum(h.up for h in parts), sum(h.down for h in parts)
        rtt_n, loss_n = sum(h.rtt_rounds for h in parts), sum(h.loss_rounds for h in parts)
        rows.append(
            {
                "date": day,
                "rounds": sum(h.rounds for h in parts),
                "backhaul_up_percent": None if up + down == 0 else round(100 * up / (up + down), 1),
                "rtt_ms": None if not rtt_n else round(sum(h.rtt_sum_ms for h in parts) / rtt_n, 1),
                "loss_percent": None
                if not loss_n
                else round(sum(h.loss_sum for h in parts) / loss_n, 2),
                "wan_rx_bytes": sum(h.rx_bytes for h in parts),
                "wan_tx_bytes": sum(h.tx_bytes for h in parts),
            }
        )
    return rows


def history_report(config: Config, *, now: float | None = None) -> dict[str, Any]:
    """Everything `status --history` shows, as one JSON-ready object (times: UTC seconds)."""
    now = time.time() if now is None else now
    record: Record = read_history(config.state_dir, now=now)
    return {
        "site": config.site_id,
        "days": _day_rows(record.hours),
        "outages": [
            {
                "start": o.start,
                "end": None if o.start is None else o.start + o.duration_s,
                "duration_s": round(o.duration_s, 1),
                "ongoing": o.ongoing,
            }
            for o in record.outages
        ],
        "power_cuts": [
            {
                "down_from": c.down_from,
                "back": c.back,
                "duration_s": None if c.down_from is None else round(c.back - c.down_from, 1),
            }
            for c in record.power_cuts
        ],
        "events_dropped": record.events_dropped,
    }


def span(seconds: float, lang: Lang) -> str:
    """3 h 30 min, as a person says a length of time."""
    minutes = round(max(0.0, seconds) / 60)
    if minutes < 60:
        return text("history.span_min", lang, m=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return text("history.span_h", lang, h=hours, m=minutes)
    days, hours = divmod(hours, 24)
    return text("history.span_d", lang, d=days, h=hours)


def _when(ts: float) -> str:
    return _local(ts).strftime("%Y-%m-%d %H:%M")


def _until(start: float, end: float) -> str:
    """The end time, without its date when it is the start's day."""
    same_day = _local(start).date() == _local(end).date()
    return _local(end).strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")


def _percent(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f} %"


def render_text(out: dict[str, Any], lang: Lang = "en") -> str:
    tz = datetime.now().astimezone().strftime("%Z")
    lines = [text("history.title", lang, site=out["site"], tz=tz)]
    if not out["days"]:
        lines.append("  " + text("history.empty", lang))
    else:
        date, up, rtt, loss, wan = text("history.columns", lang).split("|")
        lines.append(
            "  " + text("history.head", lang, date=date, up=up, rtt=rtt, loss=loss, wan=wan)
        )
        for day in out["days"]:
            latency = "-" if day["rtt_ms"] is None else f"{day['rtt_ms']:.0f} ms"
            volume = f"{human_bytes(day['wan_rx_bytes'])} / {human_bytes(day['wan_tx_bytes'])}"
            lines.append(
                "  "
                + text(
                    "history.head",
                    lang,
                    date=day["date"],
                    up=_percent(day["backhaul_up_percent"], 1),
                    rtt=latency,
                    loss=_percent(day["loss_percent"], 1),
                    wan=volume,
                )
            )
    lines.append(text("history.outages" if out["outages"] else "history.no_outages", lang))
    for outage in out["outages"]:
        length = span(outage["duration_s"], lang)
        if outage["start"] is None:
            line = text("history.outage_no_start", lang, span=length)
        elif outage["ongoing"]:
            line = text("history.outage_open", lang, start=_when(outage["start"]), span=length)
        else:
            end = _until(outage["start"], outage["end"])
            line = text("history.outage", lang, start=_when(outage["start"]), end=end, span=length)
        lines.append("  " + line)
    lines.append(text("history.power_cuts" if out["power_cuts"] else "history.no_power_cuts", lang))
    for cut in out["power_cuts"]:
        if cut["down_from"] is None:
            line = text("history.power_cut_no_start", lang, end=_when(cut["back"]))
        else:
            line = text(
                "history.power_cut",
                lang,
                start=_when(cut["down_from"]),
                end=_until(cut["down_from"], cut["back"]),
                span=span(cut["duration_s"], lang),
            )
        lines.append("  " + line)
    if out["events_dropped"]:
        lines.append(text("history.dropped", lang, n=out["events_dropped"], limit=MAX_EVENTS))
    if out["outages"] or out["power_cuts"]:
        lines.append(text("history.next", lang))
    return "\n".join(lines)


def run_history(config: Config, *, as_json: bool, lang: Lang = "en") -> int:
    out = history_report(config)
    print(json.dumps(out, sort_keys=True) if as_json else render_text(out, lang))
    return EX_OK
