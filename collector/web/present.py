"""How figures read on a page: the reader's language, ages, rates, times. Words from the catalogue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Request

from collector.messages import LANGS, Lang, text


def request_lang(request: Request) -> Lang:
    """`?lang=id|en`, else the browser's Accept-Language, else English."""
    asked = request.args.get("lang", "")
    for lang in LANGS:
        if asked == lang:
            return lang
    best = request.accept_languages.best_match(LANGS, default="en")
    return "id" if best == "id" else "en"


def translator(lang: Lang) -> Callable[..., str]:
    def t(key: str, /, **args: object) -> str:
        return text(key, lang, **args)

    return t


def iso(ms: int | None) -> str:
    """UTC time to the second, ISO 8601 with Z; empty for none."""
    if ms is None:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def ago(ms: int | None, now_ms: int, lang: Lang) -> str:
    if ms is None:
        return text("dash.never", lang)
    seconds = max(0, (now_ms - ms) // 1000)
    if seconds < 120:
        return text("dash.ago_s", lang, n=seconds)
    if seconds < 2 * 3600:
        return text("dash.ago_m", lang, n=seconds // 60)
    if seconds < 2 * 86400:
        return text("dash.ago_h", lang, n=seconds // 3600)
    return text("dash.ago_d", lang, n=seconds // 86400)


def duration(seconds: float) -> str:
    """`3 h 05 m`, `12 m 04 s`, `45 s`: units that read the same in both languages."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24} d {hours % 24:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"


def rate(bps: float | None) -> str:
    """Bits per second with an SI prefix: `1.2 M`."""
    if bps is None:
        return "—"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bps >= limit:
            return f"{bps / limit:.1f} {suffix}"
    return f"{bps:.0f}"


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def percent(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio * 100:.1f}%"
