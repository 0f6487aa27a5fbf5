"""`village-agent diag`: the technician's checklist, each line pass/warn/fail with what to do next.

Exit status: 0 when nothing failed (warnings allowed), 1 when at least one check failed, 78 when the
configuration could not be loaded (the checks that need no config still run and are printed).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from agent.cli.exits import EX_CHECK_FAILED, EX_CONFIG, EX_OK
from agent.config.load import ConfigError, load_config
from agent.diag.base import CheckResult, CheckSpec, DiagInputs, result
from agent.diag.checks import CHECKS
from agent.diag.messages import Lang
from agent.diag.render import Progress, Timed, as_json

TOTAL_BUDGET_S = 28.0  # the bound is 30 s with DNS and the broker dead; keep a margin
_GRACE_S = 0.5  # a check's own timeouts should fire first; this is the safety net past them

__all__ = ["CHECKS", "TOTAL_BUDGET_S", "exit_code", "inputs_from_file", "run_checks", "run_diag"]


def inputs_from_file(config_file: Path) -> DiagInputs:
    try:
        return DiagInputs(config=load_config(config_file), config_file=config_file)
    except ConfigError as err:
        return DiagInputs(config=None, config_file=config_file, config_problems=tuple(err.problems))


def _run_one(
    spec: CheckSpec, inputs: DiagInputs, earlier: dict[str, CheckResult], budget: float
) -> CheckResult:
    """Run one check in a daemon thread and wait at most its budget: a resolver or a socket that
    ignores its timeout cannot hold up the checklist (the thread ends with the process)."""
    box: queue.SimpleQueue[CheckResult] = queue.SimpleQueue()

    def work() -> None:
        try:
            box.put(spec.run(inputs, dict(earlier), budget))
        except Exception as err:  # per-check isolation: one broken check never hides the others
            box.put(
                result(spec.name, "fail", "common.crashed", error=f"{type(err).__name__}: {err}")
            )

    threading.Thread(target=work, name=f"diag-{spec.name}", daemon=True).start()
    try:
        return box.get(timeout=budget + _GRACE_S)
    except queue.Empty:
        return result(spec.name, "fail", "common.timeout", seconds=round(budget, 1))


def run_checks(
    inputs: DiagInputs,
    *,
    checks: Sequence[CheckSpec] = CHECKS,
    progress: Progress | None = None,
    total_budget_s: float = TOTAL_BUDGET_S,
) -> list[Timed]:
    """Run the checks in order; each gets its own limit, cut short so the total stays in budget."""
    deadline = time.monotonic() + total_budget_s
    done: list[Timed] = []
    earlier: dict[str, CheckResult] = {}
    for index, spec in enumerate(checks):
        # Leave every later check a little time, so the list always ends with every line printed.
        reserve = 0.2 * (len(checks) - index - 1)
        budget = max(0.2, min(spec.timeout_s, deadline - time.monotonic() - reserve - _GRACE_S))
        if progress is not None:
            progress.started(spec.name)
        start = time.monotonic()
        found = _run_one(spec, inputs, earlier, budget)
        timed = Timed(result=found, elapsed_s=time.monotonic() - start)
        earlier[spec.name] = found
        done.append(timed)
        if progress is not None:
            progress.finished(timed)
    return done


def exit_code(results: Sequence[Timed]) -> int:
    by_name = {t.result.name: t.result for t in results}
    config = by_name.get("config")
    if config is not None and config.status == "fail":
        return EX_CONFIG
    if any(t.result.status == "fail" for t in results):
        return EX_CHECK_FAILED
    return EX_OK


def run_diag(config_file: Path, *, lang: Lang, json_out: bool, out: TextIO, tty: bool) -> int:
    """Run the checklist, print it in `lang` (progress on a terminal, or JSON), return the exit code."""
    start = time.monotonic()
    inputs = inputs_from_file(config_file)
    progress = None if json_out else Progress(out, lang, tty=tty)
    if progress is not None:
        progress.heading(inputs.config.site_id if inputs.config else str(config_file))
    results = run_checks(inputs, progress=progress)
    code = exit_code(results)
    seconds = time.monotonic() - start
    if progress is not None:
        progress.summary(results, seconds)
    else:
        out.write(as_json(results, lang, exit_code=code, seconds=seconds) + "\n")
    return code
