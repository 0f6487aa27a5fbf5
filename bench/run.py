"""`python -m bench.run`: measure the agent (and collectd beside it) and print one table.

Sections: steady (RSS, CPU, start-up, bytes per reading on MQTT, wire and disk), layout (payload
and disk-write experiments), drain, outage (72 h in virtual time), fleet, collectd, ping (accuracy
through the namespace lab, idle and busy), ack (the downlink a site pays for the collector's
acks), kills (a kill -9 loop: nothing lost, one seq series). `--quick` takes about six minutes;
the full run about thirty (the fleet is seven, the 500 kills up to fifteen).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proc
from bench.net import Broker
from bench.table import SKIP, Row, render

SECTIONS = (
    "steady",
    "layout",
    "confirm",
    "drain",
    "outage",
    "fleet",
    "collectd",
    "ping",
    "ack",
    "kills",
)


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    top.add_argument("--quick", action="store_true", help="shorter windows (about two minutes)")
    top.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only these sections ({', '.join(SECTIONS)})",
    )
    top.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp"),
        help="state directories go under this; keep it on the real disk (not tmpfs) so that "
        "/proc/PID/io counts the writes (default /var/tmp)",
    )
    top.add_argument("--keep", action="store_true", help="keep the work directory")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = args.only or list(SECTIONS)
    root = Path(tempfile.mkdtemp(prefix="village-bench-", dir=args.workdir))
    logs = Path(tempfile.mkdtemp(prefix="village-bench-logs-", dir="/dev/shm"))
    fstype = proc.filesystem_of(root)
    rows: list[Row] = [Row(metric="state dir file system", value=f"{fstype} ({root})")]
    broker = Broker(root / "broker")
    started = time.monotonic()
    context: dict[str, object] = {}

    def section(name: str, body: Callable[[], list[Row]]) -> None:
        if name not in chosen:
            return
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            rows.extend(body())
        except Exception as err:  # one broken section must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(metric=f"{name}: failed", value=str(err)[:80], status=SKIP))
        print(f"[bench] {name} took {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    try:
        from bench import (  # noqa: PLC0415
            ack_cost,
            collectd,
            confirm,
            drain,
            fleet,
            kills,
            layout,
            outage,
            ping_accuracy,
            steady,
        )

        def run_steady() -> list[Row]:
            result = steady.measure(broker, root / "steady", logs, quick=args.quick)
            context["steady"] = result
            return result.rows

        def run_layout() -> list[Row]:
            found = context.get("steady")
            payloads = found.payloads if isinstance(found, steady.Steady) else []
            return layout.measure(root / "layout", payloads, quick=args.quick)

        section("steady", run_steady)
        section("layout", run_layout)
        section("confirm", lambda: confirm.measure(root / "confirm", quick=args.quick))
        section("drain", lambda: drain.measure(broker, root / "drain", logs, quick=args.quick))
        section("outage", lambda: outage.measure(broker, root / "outage", quick=args.quick))
        section("fleet", lambda: fleet.measure(broker, root / "fleet", quick=args.quick))
        section(
            "collectd", lambda: collectd.measure(broker, root / "collectd", logs, quick=args.quick)
        )
        section("ping", lambda: ping_accuracy.measure(quick=args.quick))
        section("ack", lambda: ack_cost.measure(broker))
        section("kills", lambda: kills.measure(broker, root / "kills", logs, quick=args.quick))
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(logs, ignore_errors=True)
    print(render(rows, proc.machine()))
    print(
        f"run: {'quick' if args.quick else 'full'}, {time.monotonic() - started:.0f} s, "
        f"sections: {', '.join(chosen)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
