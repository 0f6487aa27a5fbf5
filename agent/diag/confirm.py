"""The collector's confirmation, as the daemon last reported it: what the collector stored of this
site's readings, and what waits on the gateway for its word (agent/buffer/confirm.py)."""

from __future__ import annotations

from agent.daemon.state import StatusRecord
from agent.diag.base import Arg, CheckResult, DiagInputs, Earlier, needs_config, result
from agent.files import status_path


def check_confirm(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    config = inputs.config
    if config is None:
        return needs_config("confirm")
    status = StatusRecord.read(status_path(config.state_dir, config.status_dir))
    if status is None or status.confirm_seen is None:
        return result("confirm", "warn", "confirm.unknown")
    if not status.confirm_seen:
        return result("confirm", "pass", "confirm.none")
    age = status.last_confirm_at
    args: dict[str, Arg] = {
        "through": "-" if status.confirmed_through is None else status.confirmed_through,
        "epoch": status.confirmed_epoch or "-",
        "age_min": "-" if age is None else round(max(0.0, inputs.clock.wall() - age) / 60, 1),
        "unconfirmed": status.unconfirmed,
        "missing": status.confirm_missing,
        "released": status.unconfirmed_released_total,
        "max": config.buffer.unconfirmed_max_readings,
    }
    if status.unconfirmed_released_total:
        return result("confirm", "warn", "confirm.released", **args)
    if status.confirm_missing:
        return result("confirm", "warn", "confirm.repairing", **args)
    return result("confirm", "pass", "confirm.ok", **args)
