"""`village-agent`: run the daemon, measure once, check a config, and the technician's tools."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

import structlog

from agent import __version__, logs
from agent.buffer import BufferError
from agent.clock import SystemClock, read_boot_id
from agent.compose import build_agent, build_link, build_probes, open_buffer, speedtest_probe
from agent.config import EX_CONFIG, Config, ConfigError, load_config
from agent.daemon import drain_before_exit, measure, run_loop
from agent.probes.base import ProbeError
from agent.reading import Sample
from agent.sdnotify import Notifier
from agent.status import RUN_MARKER, classify_start, mark_running, read_json
from agent.stopping import Stopping
from agent.techcmds import add_commands

EX_OK = 0
EX_SOFTWARE = 70  # sysexits.h: the buffer or state directory cannot be used
EX_CANTCREAT = 73
EX_TEMPFAIL = 75  # another agent holds the state directory

DEFAULT_CONFIG = Path("/etc/village-agent/agent.yaml")
# SIGTERM to exit: the contract says 10 s; the slack covers the interpreter's own exit.
STOP_WITHIN_S = 8.0

log = structlog.get_logger("agent")


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        raise SystemExit(EX_CONFIG) from err


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(Path(args.file))
    print(f"{args.file}: OK (site {config.site_id}, broker {config.broker.url})")
    return EX_OK


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"village-agent {__version__}")
    return EX_OK


def cmd_once(args: argparse.Namespace) -> int:
    config = _load(Path(args.config))
    logs.configure(config.log.level)
    clock = SystemClock()
    # The scheduled speed test never runs here: it costs metered bytes, so only --speedtest asks.
    probes = [p for p in build_probes(config, clock) if p.name != "speedtest"]
    # Counters need two reads to make a rate: take a baseline, wait a second, then the real round.
    measure(probes)
    time.sleep(1.0)
    samples, _failed = measure(probes)
    if args.speedtest:
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
            samples += speedtest_probe(config, clock).run(trigger="manual")
        except (OSError, ProbeError) as err:
            print(f"speed test not run: {err}", file=sys.stderr)
            return EX_SOFTWARE
    now_ms = round(clock.wall() * 1000)
    for sample in samples:
        if args.json:
            record = {
                "metric": sample.metric,
                "value": sample.value,
                "tags": dict(sample.tags),
                "ts": now_ms,
            }
            print(json.dumps(record, separators=(",", ":")))
        else:
            tags = ",".join(f"{k}={v}" for k, v in sorted(sample.tags.items()))
            print(f"{sample.metric:32} {sample.value:>14g}  {tags}")
    return EX_OK


def hold_state_lock(state_dir: Path) -> TextIO | None:
    """Take the state directory's lock for the life of the process; None if another agent has it.

    Two agents on one buffer would each think the other's rows are theirs to send and delete.
    """
    handle = (state_dir / "agent.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def one_malloc_arena() -> None:
    """glibc gives the MQTT thread its own malloc arena; sharing the main one saves 0.2 MB of RSS
    (M_ARENA_MAX, as MALLOC_ARENA_MAX=1 would). Nothing happens where the libc has no mallopt."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-8, 1)


def cmd_run(args: argparse.Namespace) -> int:
    # Handlers first: a SIGTERM while the buffer opens or the probes are built must still end in
    # a clean stop (the loop sees the flag at once), not in death by signal with no marker.
    stopping = Stopping()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.request(time.monotonic())

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    one_malloc_arena()
    config = _load(Path(args.config))
    logs.configure(config.log.level)
    clock = SystemClock()
    boot_id = read_boot_id()
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        lock = hold_state_lock(config.state_dir)
        if lock is None:
            log.error(
                "state_dir_in_use",
                state_dir=str(config.state_dir),
                advice="another village-agent runs with this state_dir; stop it first",
            )
            return EX_TEMPFAIL
        marker = read_json(config.state_dir / RUN_MARKER)
        mark_running(config.state_dir, boot_id, clean=False)
    except OSError as err:
        read_only = err.errno == errno.EROFS
        log.error(
            "state_dir_unusable",
            state_dir=str(config.state_dir),
            error=err.strerror,
            advice=(
                "the SD card is read-only, usually after file system errors: check it with fsck "
                "(or replace the card), then restart the service"
                if read_only
                else "create it and make it writable by the agent's user"
            ),
        )
        return EX_CANTCREAT
    start = classify_start(marker, boot_id)
    if config.status_dir is not None:
        try:
            config.status_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            # Only `status` and `diag` miss it: measuring and buffering go on.
            log.warning(
                "status_dir_unusable",
                status_dir=str(config.status_dir),
                error=err.strerror,
                advice="create it writable by the agent's user (systemd: RuntimeDirectory=)",
            )
    try:
        buffer, start_samples = open_buffer(config, now=clock.wall())
    except BufferError as err:
        log.error("buffer_unusable", error=str(err))
        return EX_SOFTWARE
    start_samples.append(
        Sample(metric="event.agent_start", value=1.0, tags={"reason": start.reason})
    )
    link = build_link(config)
    agent = build_agent(
        config,
        clock=clock,
        boot_id=boot_id,
        link=link,
        probes=build_probes(config, clock, stopping),
        buffer=buffer,
        start_samples=start_samples,
    )
    backlog = buffer.stats().count
    log.info(
        "agent_started",
        site=config.site_id,
        version=__version__,
        broker=config.broker.url,
        start=start.reason,
        backlog=backlog,
        interval_s=config.interval_s,
        message="measuring; readings are kept on disk until the broker acknowledges them",
    )
    link.start()
    notifier = Notifier.from_environ()
    run_loop(
        agent,
        clock=clock,
        interval_s=config.interval_s,
        should_stop=stopping,
        notifier=notifier,
        watchdog_s=notifier.watchdog_interval_s,
        healthy=lambda: link.alive,
    )
    # One deadline for everything after the signal, so the agent is gone within STOP_WITHIN_S
    # (systemd's TimeoutStopSec is longer) even when the round in progress was slow.
    deadline = (stopping.at or time.monotonic()) + STOP_WITHIN_S
    drain_before_exit(agent, timeout_s=min(2.0, max(0.0, deadline - time.monotonic() - 3.0)))
    agent.write_status()
    try:
        mark_running(config.state_dir, boot_id, clean=True)
    except OSError as err:
        log.warning("clean_stop_marker_not_saved", error=err.strerror)
    said_offline = link.stop(timeout_s=min(3.0, max(0.5, deadline - time.monotonic())))
    log.info("agent_stopped", backlog=buffer.stats().count, offline_published=said_offline)
    buffer.close()
    return EX_OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="village-agent",
        description="Measures a village site's link, buffers readings on disk, publishes over MQTT.",
    )
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default=str(DEFAULT_CONFIG), help="config file (YAML)")
    run.set_defaults(func=cmd_run)
    once = sub.add_parser("once", help="measure one round and print it; nothing is stored or sent")
    once.add_argument("--config", default=str(DEFAULT_CONFIG))
    once.add_argument("--json", action="store_true", help="one JSON object per reading per line")
    once.add_argument(
        "--speedtest",
        action="store_true",
        help="also run the speed test now (whatever the schedule, never beyond the data budget)",
    )
    once.set_defaults(func=cmd_once)
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    add_commands(sub, _load, DEFAULT_CONFIG)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
