"""Every word the dashboard shows comes from the catalogue, in Indonesian and in English."""

from __future__ import annotations

import re
from pathlib import Path

from collector.messages import LANGS, MESSAGES

WEB = Path(__file__).resolve().parents[2] / "collector"
USED = re.compile(r"""\bt(?:ext)?\(\s*["']((?:dash|alert|sites)\.[\w.]*\w)["']""")


def test_every_key_has_both_languages() -> None:
    """No catalogue entry lacks a language or is empty in one."""
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key


def test_every_key_the_pages_and_alerts_use_is_in_the_catalogue() -> None:
    """Keys named in templates and code (t("dash.…"), text("alert.…")) all exist; keys built from
    a state (dash.state.*, dash.range.*, alert.<kind>.<state>) exist for every state."""
    files = [*WEB.glob("web/templates/*.html"), *WEB.glob("web/*.py"), *WEB.glob("alerts/*.py")]
    used = {key for f in files for key in USED.findall(f.read_text(encoding="utf-8"))}
    assert len(used) > 30
    missing = sorted(k for k in used if k not in MESSAGES)
    assert not missing, missing
    built = [f"dash.state.{s}" for s in ("online", "offline", "no_data")]
    built += [f"dash.range.{r}" for r in ("24h", "7d", "30d")]
    built += [f"alert.{k}.{s}" for k, states in {"offline": ("offline", "online"),
              "backhaul": ("down", "up"), "undervoltage": ("on", "off")}.items()
              for s in states]  # fmt: skip
    assert not [k for k in built if k not in MESSAGES]
