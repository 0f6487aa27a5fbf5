"""Scenario files: a village site's link, its people, and what goes wrong, as frozen dataclasses.

A scenario is YAML, validated as strictly as the agent's own config (every problem reported with its
path). Its `agent:` section is a partial agent config, checked against the agent's schema with the
simulator's site id, state dir and broker filled in.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from agent.config.convert import convert, meta
from agent.config.schema import Config

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"

EventKind = Literal["backhaul_outage", "power_cut", "broker_outage", "disk_full", "clock_step"]


class ScenarioError(Exception):
    """A scenario file cannot be used; `problems` names every one with its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"scenario {source}:\n" + "\n".join(f"  - {p}" for p in problems))


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must not be negative, got {value}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def _ratio(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be between 0 and 1, got {value}"


def _iso_time(value: str) -> str | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"expected an ISO 8601 time such as 2026-03-02T00:00:00+08:00, got {value!r}"
    return None if parsed.tzinfo else "give the time zone, e.g. +08:00 (WITA)"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkProfile:
    """What a backhaul is like when idle; `bloat_ms` is the extra delay at the evening peak."""

    rtt_ms: float
    jitter_ms: float
    loss_ratio: float
    down_mbit: float
    up_mbit: float
    bloat_ms: float


PROFILES: Mapping[str, LinkProfile] = {
    "vsat": LinkProfile(
        rtt_ms=600, jitter_ms=25, loss_ratio=0.02, down_mbit=4, up_mbit=1, bloat_ms=250
    ),
    "4g": LinkProfile(
        rtt_ms=55, jitter_ms=15, loss_ratio=0.005, down_mbit=15, up_mbit=5, bloat_ms=80
    ),
    "fibre": LinkProfile(
        rtt_ms=12, jitter_ms=2, loss_ratio=0.001, down_mbit=50, up_mbit=50, bloat_ms=10
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    profile: Literal["vsat", "4g", "fibre"] = field(
        default="vsat", metadata=meta("vsat, 4g or fibre: the defaults for the fields below")
    )
    rtt_ms: float | None = field(default=None, metadata=meta("idle round trip", _positive))
    jitter_ms: float | None = field(default=None, metadata=meta("RTT spread", _non_negative))
    loss_ratio: float | None = field(default=None, metadata=meta("ping loss when idle", _ratio))
    down_mbit: float | None = field(default=None, metadata=meta("downlink capacity", _positive))
    up_mbit: float | None = field(default=None, metadata=meta("uplink capacity", _positive))

    def resolved(self) -> LinkProfile:
        base = PROFILES[self.profile]
        overrides = {
            name: value
            for name, value in (
                ("rtt_ms", self.rtt_ms),
                ("jitter_ms", self.jitter_ms),
                ("loss_ratio", self.loss_ratio),
                ("down_mbit", self.down_mbit),
                ("up_mbit", self.up_mbit),
            )
            if value is not None
        }
        return replace(base, **overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class HotspotSpec:
    peak_clients: int = field(default=30, metadata=meta("devices on the hotspot at the peak"))
    peak_hour: float = field(default=20.0, metadata=meta("local hour of the evening peak"))
    utc_offset_h: float = field(default=8.0, metadata=meta("local time zone (WITA: 8)"))
    peak_share: float = field(
        default=0.7, metadata=meta("share of the downlink in use at the peak", _ratio)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: EventKind = field(metadata=meta("what happens"))
    at_h: float = field(metadata=meta("hours after the start", _non_negative))
    for_h: float = field(metadata=meta("how long it lasts", _positive))
    ntp_sync_after_h: float | None = field(
        default=0.25,
        metadata=meta("power_cut: NTP syncs this long after power returns; null: not this boot"),
    )
    step_s: float = field(
        default=0.0,
        metadata=meta("clock_step: the wall clock is off by this many seconds while it lasts"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str = field(metadata=meta("short name"))
    description: str = field(default="-", metadata=meta("what it shows"))
    seed: int = field(default=1, metadata=meta("random seed: same seed, same run"))
    hours: float = field(default=24.0, metadata=meta("virtual hours to run", _positive))
    start: str = field(
        default="2026-03-02T00:00:00+08:00", metadata=meta("true time at the start", _iso_time)
    )
    hwclock_save_h: float = field(
        default=1.0, metadata=meta("fake-hwclock saves the time this often", _positive)
    )
    clock_drift_ppm: float = field(
        default=40.0, metadata=meta("the gateway crystal's error (no RTC, no NTP yet)")
    )
    link: LinkSpec = field(default_factory=LinkSpec, metadata=meta("the backhaul"))
    hotspot: HotspotSpec = field(default_factory=HotspotSpec, metadata=meta("the people"))
    events: tuple[Event, ...] = field(default=(), metadata=meta("what goes wrong, and when"))
    expect_drops: bool = field(
        default=False, metadata=meta("the buffer bound is meant to be exceeded")
    )
    # Not converted by `convert`: a partial agent config, checked by `agent_config`.
    agent: Mapping[str, Any] = field(default_factory=dict)

    @property
    def start_s(self) -> float:
        return datetime.fromisoformat(self.start).timestamp()


# What the simulator sets unless the scenario says otherwise: reconnect backoff runs in real time, so
# it must be short; splay would only delay the first connect of every site.
AGENT_DEFAULTS: Mapping[str, Any] = {
    "interval_s": 60,
    "broker": {"reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "splay_s": 0, "keepalive_s": 30},
    "latency": {"targets": ["1.1.1.1"], "count": 5},
    # The fakes' hotspot interface (simulator.fakes.site.LAN), and a name for the fake resolver.
    "lan": {"interface": "wlan0"},
    "dns": {"names": ["collector.example.id"]},
}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def agent_config(
    scenario: Scenario, *, site_id: str, state_dir: Path, broker_url: str, topic_prefix: str
) -> Config:
    """The agent's config for one simulated site. Raise ScenarioError naming every bad key."""
    config, problems = _config(
        scenario.agent,
        site_id=site_id,
        state_dir=state_dir,
        broker_url=broker_url,
        topic_prefix=topic_prefix,
    )
    if config is None:
        raise ScenarioError(scenario.name, problems)
    return config


def _config(
    agent: Mapping[str, Any], *, site_id: str, state_dir: Path, broker_url: str, topic_prefix: str
) -> tuple[Config | None, list[str]]:
    fixed = {
        "site_id": site_id,
        "state_dir": str(state_dir),
        "broker": {"url": broker_url, "topic_prefix": topic_prefix},
    }
    raw = _merge(_merge(AGENT_DEFAULTS, agent), fixed)
    config, problems = convert(Config, raw)
    return config, [p.replace("At '", "At 'agent.", 1) for p in problems]


def parse_scenario(text: str, source: str) -> Scenario:
    """Parse and check scenario YAML. Raise ScenarioError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(source, [f"not valid YAML: {err}"]) from err
    if not isinstance(raw, dict):
        raise ScenarioError(source, ["expected a mapping at the top"])
    agent_raw = raw.pop("agent", {})
    if isinstance(agent_raw, dict):
        _, problems = _config(
            agent_raw,
            site_id="check",
            state_dir=Path("state"),
            broker_url="mqtt://127.0.0.1:1883",
            topic_prefix="check",
        )
    else:
        problems, agent_raw = ["At 'agent': expected a mapping of agent settings"], {}
    scenario, found = convert(Scenario, raw)
    problems = found + problems
    if scenario is None:
        raise ScenarioError(source, problems)
    scenario = replace(scenario, agent=agent_raw)
    for index, event in enumerate(scenario.events):
        if event.at_h + event.for_h > scenario.hours:
            problems.append(f"At 'events[{index}]': ends after the run ({scenario.hours} h)")
    if problems:
        raise ScenarioError(source, problems)
    return scenario


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by file path, or by name from the scenarios shipped with the simulator."""
    path = Path(name_or_path)
    if not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        known = ", ".join(shipped_scenarios())
        raise ScenarioError(
            str(name_or_path), [f"cannot read it ({err}); shipped: {known}"]
        ) from err
    return parse_scenario(text, str(path))


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
