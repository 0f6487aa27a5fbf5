"""Checks of the gateway itself: interfaces, default route, clock, disk, power, ICMP permission."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from agent.buffer.store import disk_free_bytes
from agent.clock import PLAUSIBLE_AFTER_S
from agent.diag.base import Arg, CheckResult, DiagInputs, Earlier, needs_config, result
from agent.probes.ping.wire import available_method
from agent.probes.route import default_routes
from agent.probes.system import (
    FREQ_CAPPED_NOW,
    SINCE_BOOT,
    TEMP_LIMIT_NOW,
    THROTTLED_NOW,
    UNDER_VOLTAGE_NOW,
    run_vcgencmd,
    throttled_word,
)

_IFF_UP = 0x1
_IFF_RUNNING = 0x40  # the kernel's "lower up": carrier present


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _iface_up(sys_root: Path, name: str) -> bool | None:
    """True when up with carrier, False when down, None when there is no such interface."""
    base = sys_root / "class/net" / name
    flags = _read(base / "flags")
    if flags is None:
        return None
    state = _read(base / "operstate")
    running = bool(int(flags, 16) & _IFF_UP) and bool(int(flags, 16) & _IFF_RUNNING)
    # Tunnels and PPP report "unknown" forever; their flags tell the truth.
    return state == "up" or (state == "unknown" and running)


def check_interfaces(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    """Every counted interface up; the hotspot's LAN interface (`lan.interface`) always counts, and
    down or missing it fails whatever else is up: without it nobody in the village gets online."""
    name = "interfaces"
    wan = {route.interface for route in default_routes(inputs.proc)}
    configured = inputs.config.throughput.interfaces if inputs.config else ()
    lan = inputs.config.lan.interface if inputs.config else None
    try:
        names = configured or tuple(
            sorted(n for n in os.listdir(inputs.sys / "class/net") if n != "lo")
        )
    except OSError:
        names = ()
    if lan is not None and lan not in names:
        names = (*names, lan)
    states = {n: _iface_up(inputs.sys, n) for n in names}
    missing = [n for n, up in states.items() if up is None and n != lan]
    down = [n for n, up in states.items() if up is False]
    up = [n for n, s in states.items() if s]
    roles = {n: " (WAN)" if n in wan else " (LAN)" if n == lan else "" for n in names}
    listing = ", ".join(f"{n}{roles[n]}" for n in up) or "-"
    if lan is not None and states[lan] is None:
        return result(name, "fail", "interfaces.lan_missing", lan=lan)
    if missing and configured:
        return result(name, "fail", "interfaces.missing", names=", ".join(missing))
    if not up:
        return result(name, "fail", "interfaces.none_up", names=", ".join(down) or "-")
    if lan is not None and states[lan] is False:
        return result(name, "fail", "interfaces.lan_down", lan=lan, up=listing)
    if down and (configured or wan & set(down)):
        return result(name, "fail", "interfaces.down", names=", ".join(down), up=listing)
    if down:
        return result(name, "warn", "interfaces.some_down", names=", ".join(down), up=listing)
    return result(name, "pass", "interfaces.ok", up=listing)


def check_route(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    routes = default_routes(inputs.proc)
    if not routes:
        return result("route", "fail", "route.none")
    first = routes[0]
    gateway = first.gateway or "-"  # a point-to-point link has no next hop to name
    return result("route", "pass", "route.ok", iface=first.interface, gateway=gateway)


def utc_text(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def check_clock(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    wall = inputs.clock.wall()
    if wall < PLAUSIBLE_AFTER_S:
        return result("clock", "fail", "clock.implausible", now=utc_text(wall))
    if not inputs.clock.synced():
        return result("clock", "warn", "clock.unsynced", now=utc_text(wall))
    return result("clock", "pass", "clock.ok", now=utc_text(wall))


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("disk")
    where = _existing_parent(inputs.config.state_dir)
    try:
        free = disk_free_bytes(where)
        total = shutil.disk_usage(where).total
    except OSError as err:
        return result("disk", "fail", "disk.unreadable", path=str(where), error=str(err.strerror))
    floor = int(inputs.config.buffer.min_free_mb * 1024 * 1024)
    args: dict[str, Arg] = {
        "path": str(where),
        "free_mb": round(free / 2**20, 1),
        "floor_mb": floor / 2**20,
    }
    if free < floor:
        return result("disk", "fail", "disk.below_floor", **args)
    if free < 2 * floor or free < total * 0.05:
        return result("disk", "warn", "disk.low", **args)
    if where == inputs.config.state_dir and not os.access(where, os.W_OK):
        return result("disk", "fail", "disk.read_only", path=str(where))
    return result("disk", "pass", "disk.ok", **args)


def check_power(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    timeout_s = max(0.5, budget_s - 0.5)
    word = throttled_word(
        inputs.sys,
        lambda: None if inputs.vcgencmd is None else run_vcgencmd(inputs.vcgencmd, timeout_s),
    )
    if word is None:
        return result("power", "pass", "power.not_pi")
    flags = f"0x{word:x}"
    if word & UNDER_VOLTAGE_NOW:
        return result("power", "fail", "power.under_voltage_now", flags=flags)
    if word & THROTTLED_NOW:
        return result("power", "fail", "power.throttled_now", flags=flags)
    if word & (SINCE_BOOT | FREQ_CAPPED_NOW | TEMP_LIMIT_NOW):
        return result("power", "warn", "power.since_boot", flags=flags)
    return result("power", "pass", "power.ok", flags=flags)


def check_icmp(inputs: DiagInputs, _earlier: Earlier, _budget_s: float) -> CheckResult:
    method = available_method("auto")
    groups = " ".join((_read(inputs.proc / "sys/net/ipv4/ping_group_range") or "?").split())
    wanted = inputs.config.latency.method if inputs.config else "auto"
    if method != "tcp":
        return result("icmp", "pass", "icmp.ok", method=method, groups=groups)
    if wanted == "icmp":
        return result("icmp", "fail", "icmp.required", groups=groups)
    return result("icmp", "warn", "icmp.tcp_fallback", groups=groups)
