"""Checks of the agent's own state: its config, its buffer backlog, and whether the service runs."""

from __future__ import annotations

from agent.buffer.readonly import Backlog, read_backlog
from agent.daemon.state import StatusRecord, daemon_state, fresh_within_s
from agent.diag.base import Arg, CheckResult, DiagInputs, Earlier, needs_config, result
from agent.files import status_path

# Readings older than this and still unsent mean data has not flowed for a while.
_BACKLOG_AGE_WARN_S = 15 * 60
_FULL_WARN_RATIO = 0.9


def check_config(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    if inputs.config is None:
        first = inputs.config_problems[0] if inputs.config_problems else "?"
        more = len(inputs.config_problems) - 1
        return result(
            "config", "fail", "config.invalid", file=str(inputs.config_file), first=first, more=more
        )
    return result(
        "config",
        "pass",
        "config.ok",
        file=str(inputs.config_file),
        site=inputs.config.site_id,
        broker=inputs.config.broker.url,
    )


def check_buffer(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    config = inputs.config
    if config is None:
        return needs_config("buffer")
    backlog = read_backlog(config.state_dir)
    if not isinstance(backlog, Backlog):
        if backlog == "no buffer yet":
            return result("buffer", "warn", "buffer.missing", path=str(config.state_dir))
        return result("buffer", "fail", "buffer.unreadable", error=backlog)
    if backlog.count == 0:
        return result("buffer", "pass", "buffer.empty", dropped=backlog.dropped_total)
    age_s = max(0.0, inputs.clock.wall() - (backlog.oldest_ts_ms or 0) / 1000)
    args: dict[str, Arg] = {
        "count": backlog.count,
        "age_min": round(age_s / 60, 1),
        "dropped": backlog.dropped_total,
        "max": config.buffer.max_readings,
    }
    if backlog.count >= config.buffer.max_readings * _FULL_WARN_RATIO:
        return result("buffer", "warn", "buffer.nearly_full", **args)
    if backlog.dropped_total:
        return result("buffer", "warn", "buffer.dropped", **args)
    if not backlog.oldest_synced:
        return result("buffer", "warn", "buffer.untrusted_age", **args)
    if age_s > max(_BACKLOG_AGE_WARN_S, 5 * config.interval_s):
        return result("buffer", "warn", "buffer.old", **args)
    return result("buffer", "pass", "buffer.ok", **args)


def check_service(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    config = inputs.config
    if config is None:
        return needs_config("service")
    judged = daemon_state(
        config.state_dir,
        status_path(config.state_dir, config.status_dir),
        interval_s=config.interval_s,
        now=inputs.clock.wall(),
        proc=inputs.proc,
    )
    status = judged.status or StatusRecord()
    age = "-" if judged.age_s is None else f"{max(0.0, judged.age_s):.0f}"
    args: dict[str, Arg] = {
        "pid": "-" if status.pid is None else str(status.pid),
        "age_s": age,
        "broker": status.broker_state or "-",
        "limit_s": round(fresh_within_s(config.interval_s)),
    }
    if judged.state == "running":
        return result("service", "pass", "service.running", **args)
    return result("service", "fail", f"service.{judged.state}", **args)
