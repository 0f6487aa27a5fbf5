"""`python -m simulator`: run a scenario, run a fleet, draw a run.

Exit status 0 when nothing committed was lost, 1 when something was, 2 for a bad command line or
scenario, 3 when a report cannot be drawn, 4 when the collector (`--collector-db`) could not start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agent import logs
from simulator.virtual.fleet import (
    GATEWAYS_PER_PROCESS,
    RunOptions,
    Site,
    auto_workers,
    fleet_sites,
    run_fleet,
)
from simulator.virtual.real_collector import CollectorError
from simulator.virtual.report import ReportError, draw
from simulator.virtual.scenario import ScenarioError, load_scenario, shipped_scenarios

EX_LOST, EX_USAGE, EX_REPORT, EX_COLLECTOR = 1, 2, 3, 4


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--broker", required=True, help="mqtt://HOST:PORT of the broker to use")
    sub.add_argument("--topic-prefix", default="sim", help="topics are PREFIX/SITE/...")
    sub.add_argument(
        "--state-root",
        type=Path,
        help="each gateway's state dir goes under this (a tmpfs such as /dev/shm is fastest: "
        "every round is an fsync); default: a fresh temporary directory, removed after the run",
    )
    sub.add_argument(
        "--keep-state",
        action="store_true",
        help="keep the temporary state directory (its path is printed) to look at the buffers",
    )
    sub.add_argument("--run-dir", type=Path, help="write summary.json and series for `report`")
    sub.add_argument(
        "--workers",
        type=int,
        help="processes to spread gateways over (default: one per core, and at least one per "
        f"{GATEWAYS_PER_PROCESS} gateways)",
    )
    sub.add_argument("--log-level", default="error", help="the agents' log level (stderr)")
    sub.add_argument(
        "--collect-s",
        type=float,
        default=60.0,
        help="after the gateways drained, how long to wait for the consumer to have everything",
    )
    sub.add_argument(
        "--collector-db",
        metavar="URL",
        help="store through the real collector (`python -m collector run`, started for the run) "
        "into sqlite:///PATH or postgresql://...; the summary is read from that database",
    )


def _finish(summary: dict[str, Any]) -> int:
    print(json.dumps(summary if summary["gateways"] <= 50 else _short(summary), indent=1))
    return EX_LOST if summary["totals"]["lost"] else 0


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    # A thousand sites do not fit on a screen: the worst ten by delay, the full list in run_dir.
    sites = summary["sites"]
    worst = sorted(sites, key=lambda s: sites[s]["worst_delay_s"] or 0, reverse=True)[:10]
    return {**summary, "sites": {s: sites[s] for s in worst}, "sites_shown": "worst 10 by delay"}


def cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    hours = args.hours or scenario.hours
    options = RunOptions(
        broker_url=args.broker,
        topic_prefix=args.topic_prefix,
        state_root=args.state_root,
        seed=args.seed if args.seed is not None else scenario.seed,
        hours=hours,
        log_level=args.log_level,
    )
    sites = [Site(site_id=args.site or f"sim-{scenario.name}", scenario=scenario)]
    summary = run_fleet(
        sites,
        options,
        run_dir=args.run_dir,
        collect_s=args.collect_s,
        collector_db=args.collector_db,
        log=_say,
    )
    return _finish(summary)


def cmd_fleet(args: argparse.Namespace) -> int:
    base = load_scenario(args.scenario)
    options = RunOptions(
        broker_url=args.broker,
        topic_prefix=args.topic_prefix,
        state_root=args.state_root,
        seed=args.seed,
        hours=args.hours,
        log_level=args.log_level,
    )
    sites = fleet_sites(base, gateways=args.gateways, hours=args.hours, seed=args.seed)
    workers = args.workers or auto_workers(len(sites))
    summary = run_fleet(
        sites,
        options,
        workers=workers,
        run_dir=args.run_dir,
        collect_s=args.collect_s,
        collector_db=args.collector_db,
        log=_say,
    )
    return _finish(summary)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        path = draw(args.run_dir, args.out)
    except ReportError as err:
        _say(str(err))
        return EX_REPORT
    print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Village gateways in virtual time against a real MQTT broker.",
    )
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one gateway through a scenario")
    run.add_argument("scenario", help=f"a YAML file, or one of: {', '.join(shipped_scenarios())}")
    run.add_argument("--site", help="site id (default: sim-SCENARIO)")
    run.add_argument("--hours", type=float, help="virtual hours (default: the scenario's)")
    run.add_argument("--seed", type=int, help="default: the scenario's")
    _common(run)
    run.set_defaults(func=cmd_run)
    fleet = sub.add_parser("fleet", help="run N gateways, each its own village")
    fleet.add_argument("--gateways", type=int, required=True)
    fleet.add_argument("--hours", type=float, required=True, help="virtual hours")
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument(
        "--scenario", default="vsat-normal-day", help="the base every village varies"
    )
    _common(fleet)
    fleet.set_defaults(func=cmd_fleet)
    report = sub.add_parser("report", help="draw a run as a PNG (needs the sim-report extra)")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--out", type=Path, help="default: RUN_DIR/report.png")
    report.set_defaults(func=cmd_report)
    return top


@contextlib.contextmanager
def _state_root(args: argparse.Namespace) -> Iterator[None]:
    """A fresh state root per run unless one is given: a second run must not reuse the first
    run's buffers (their seqs would count as lost), nor leave them in the checkout."""
    if getattr(args, "state_root", "absent") is not None:
        yield
        return
    root = Path(tempfile.mkdtemp(prefix="village-sim-"))
    args.state_root = root
    try:
        yield
    finally:
        if args.keep_state:
            _say(f"state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "error"), stream=sys.stderr)
    try:
        with _state_root(args):
            code: int = args.func(args)
    except ScenarioError as err:
        _say(str(err))
        return EX_USAGE
    except CollectorError as err:
        _say(str(err))
        return EX_COLLECTOR
    return code


if __name__ == "__main__":
    sys.exit(main())
