"""The two languages every text a person reads comes in, and how a command picks one.

The only place the choice is made; `agent.diag.messages` (diag's catalogue) and
`agent.cli.messages` (every other command's) import it. Nothing here imports more than the standard
library: `run`'s `--help` must not load the diagnostics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

Lang = Literal["id", "en"]
LANGS: tuple[Lang, ...] = ("id", "en")


def choose_lang(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Lang:
    """`--lang` if given; else the locale (LC_ALL, LC_MESSAGES, LANG: the first one set)."""
    if explicit in LANGS:
        return "id" if explicit == "id" else "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(var, "")
        if value:
            return "id" if value.lower().startswith("id") else "en"
    return "en"
