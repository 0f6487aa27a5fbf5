"""RSS through a 72-hour broker outage, in virtual time: one simulated gateway (the real agent with
fake hardware, `simulator.gateway.Gateway`) measures every 60 s into its buffer while the broker is
unreachable, then drains when it is back. Run in a child process so its RSS is its own:
`python -m bench.outage --broker URL --state DIR --hours 72` prints JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.net import Broker
from bench.table import Row, info, judged

OUTAGE_H = 72.0


def _rss_kb() -> tuple[int, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def simulate(broker_url: str, state: Path, hours: float) -> dict[str, Any]:
    from simulator.virtual.clock import Timeline  # noqa: PLC0415 - the child's imports, not the parent's
    from simulator.virtual.gateway import Gateway  # noqa: PLC0415
    from simulator.virtual.scenario import Event, load_scenario  # noqa: PLC0415
    from simulator.virtual.world import run_world  # noqa: PLC0415

    base = load_scenario("broker-outage")
    scenario = replace(
        base,
        name="bench-72h-outage",
        hours=hours + 0.5,
        events=(Event(kind="broker_outage", at_h=0.25, for_h=hours),),
    )
    timeline = Timeline(scenario.start_s)
    gateway = Gateway(
        scenario,
        site_id="bench-outage",
        state_dir=state,
        broker_url=broker_url,
        topic_prefix="bench/outage",
        timeline=timeline,
        seed=1,
    )
    start = timeline.now()
    marks: dict[int, int] = {}

    def progress(now: float) -> None:
        hour = int((now - start) // 3600)
        if hour not in marks and hour % 6 == 0:
            marks[hour] = _rss_kb()[0]

    began = time.monotonic()
    result = run_world([gateway], timeline, hours=scenario.hours, drain_s=300, progress=progress)
    rss, hwm = _rss_kb()
    done = result.gateways[0]
    return {
        "rss_kb_by_hour": marks,
        "rss_kb_after_drain": rss,
        "hwm_kb": hwm,
        "drained": result.drained,
        "readings": done.last_seq,
        "backlog_end": done.backlog,
        "wall_s": time.monotonic() - began,
    }


def measure(broker: Broker, root: Path, *, quick: bool) -> list[Row]:
    del quick  # 72 virtual hours take well under a minute either way
    command = [sys.executable, "-m", "bench.outage", "--broker", broker.url(),
               "--state", str(root / "state"), "--hours", str(OUTAGE_H)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"outage run failed: {done.stderr[-300:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    by_hour = {int(h): kb for h, kb in data["rss_kb_by_hour"].items()}
    at = {h: by_hour.get(h, 0) / 1024 for h in (6, 24, 72)}
    peak_outage = max(kb for h, kb in by_hour.items() if h <= OUTAGE_H)
    return [
        info(
            "outage 72 h (virtual): RSS at 6 h / 24 h / 72 h",
            f"{at[6]:.1f} / {at[24]:.1f} / {at[72]:.1f}",
            "MB",
        ),
        # Over the first day the growth is SQLite's page cache filling (bounded, 2 MiB by
        # default); after that the process must stay flat.
        judged("  outage: RSS growth 24 h -> 72 h (flat = 0)", at[72] - at[24], "MB", at_most=1.0),
        info(
            "  outage: peak RSS in the outage / after the drain (VmHWM)",
            f"{peak_outage / 1024:.1f} / {data['hwm_kb'] / 1024:.1f}",
            "MB",
        ),
        info(
            "  outage: readings buffered, drained, wall time",
            f"{data['readings']:,}, {'yes' if data['drained'] else 'NO'}, {data['wall_s']:.0f} s",
            "",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--hours", type=float, default=OUTAGE_H)
    args = parser.parse_args()
    from agent import logs  # noqa: PLC0415

    logs.configure("error", stream=sys.stderr)  # stdout carries the JSON result alone
    print(json.dumps(simulate(args.broker, args.state, args.hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
