"""How the checklist is shown: a line per check as it runs (rewritten in place on a terminal), or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from agent.diag.base import CheckResult
from agent.diag.messages import HEADINGS, STATUS_WORDS, TITLES, Lang, words

_WIDTH = 30  # the longest title, so details line up


@dataclass(frozen=True, slots=True, kw_only=True)
class Timed:
    result: CheckResult
    elapsed_s: float


def _tag(status: str, lang: Lang) -> str:
    return f"[{STATUS_WORDS[lang][status]:^5}]"


class Progress:
    """Prints each check as it starts ("..." on a terminal) and its line when it ends."""

    def __init__(self, out: TextIO, lang: Lang, *, tty: bool) -> None:
        self._out = out
        self._lang = lang
        self._tty = tty

    def heading(self, site: str) -> None:
        self._out.write(HEADINGS[self._lang]["title"].format(site=site) + "\n\n")
        self._out.flush()

    def started(self, name: str) -> None:
        if self._tty:
            self._out.write(f"[ ... ] {TITLES[name][self._lang]:<{_WIDTH}} ...")
            self._out.flush()

    def finished(self, timed: Timed) -> None:
        found = timed.result
        detail, advice = words(found, self._lang)
        line = (
            f"{_tag(found.status, self._lang)} {TITLES[found.name][self._lang]:<{_WIDTH}} {detail}"
        )
        if self._tty:
            self._out.write("\r\x1b[2K")  # replace the "..." line
        self._out.write(line + "\n")
        if advice and found.status != "pass":
            self._out.write(f"{'':8}{'':<{_WIDTH}} → {HEADINGS[self._lang]['next']}: {advice}\n")
        self._out.flush()

    def summary(self, results: Sequence[Timed], seconds: float) -> None:
        counts = {s: sum(t.result.status == s for t in results) for s in ("pass", "warn", "fail")}
        text = HEADINGS[self._lang]["summary"].format(
            passed=counts["pass"], warned=counts["warn"], failed=counts["fail"], seconds=seconds
        )
        self._out.write("\n" + text + "\n")
        self._out.flush()


def as_json(results: Sequence[Timed], lang: Lang, *, exit_code: int, seconds: float) -> str:
    """`{"checks": [{"name", "status", "detail", "advice", "key", "elapsed_s"}], ...}`."""
    checks = []
    for timed in results:
        detail, advice = words(timed.result, lang)
        checks.append(
            {
                "name": timed.result.name,
                "status": timed.result.status,
                "detail": detail,
                "advice": advice,
                "key": timed.result.key,
                "elapsed_s": round(timed.elapsed_s, 3),
            }
        )
    body = {"checks": checks, "lang": lang, "exit_code": exit_code, "elapsed_s": round(seconds, 3)}
    return json.dumps(body, ensure_ascii=False, indent=1)
