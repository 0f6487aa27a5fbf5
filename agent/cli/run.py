"""`village-agent run`: the daemon. Signals, the state directory's lock, the run marker, then the
agent from the composition root in its loop until SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TextIO

import structlog

from agent import __version__, logs
from agent.buffer.errors import BufferError
from agent.cli.exits import EX_CANTCREAT, EX_OK, EX_SOFTWARE, EX_TEMPFAIL
from agent.clock import SystemClock, read_boot_id
from agent.config.schema import Config
from agent.daemon.compose import Sources, build_link, start_agent
from agent.daemon.loop import drain_before_exit, run_loop
from agent.daemon.sdnotify import Notifier
from agent.daemon.state import mark_running, save_held_lost
from agent.daemon.stopping import Stopping
from agent.files import LOCK_FILE

# SIGTERM to exit: the contract says 10 s; the slack covers the interpreter's own exit.
STOP_WITHIN_S = 8.0

log = structlog.get_logger("agent")


def hold_state_lock(state_dir: Path) -> TextIO | None:
    """Take the state directory's lock for the life of the process; None if another agent has it.

    Two agents on one buffer would each think the other's rows are theirs to send and delete.
    """
    try:
        handle = (state_dir / LOCK_FILE).open("a")
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.ENOSPC):
            raise
        # A full or read-only card: flock works on a file opened for reading just the same.
        handle = (state_dir / LOCK_FILE).open("r")
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


def cmd_run(args: argparse.Namespace, load: Callable[[Path], Config]) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    # Handlers first: a SIGTERM while the buffer opens or the probes are built must still end in
    # a clean stop (the loop sees the flag at once), not in death by signal with no marker.
    stopping = Stopping()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.request(time.monotonic())

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    one_malloc_arena()
    config = load(Path(args.config))
    logs.configure(config.log.level)
    clock = SystemClock()
    boot_id = read_boot_id()
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
    link = build_link(config)
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
        agent, start = start_agent(
            config, Sources(clock=clock, stopping=stopping), boot_id=boot_id, link=link
        )
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
    except BufferError as err:
        log.error("buffer_unusable", error=str(err))
        return EX_SOFTWARE
    backlog = agent.buffer.stats().count
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
    held = agent.flush_held()
    agent.write_status()
    agent.close_history()
    if held:
        # Rounds that never reached the disk go with the process: counted at the next start.
        log.error("held_readings_lost", readings=held)
        try:
            save_held_lost(config.state_dir, held)
        except OSError as err:
            log.warning("held_count_not_saved", error=err.strerror, readings=held)
    try:
        mark_running(config.state_dir, boot_id, clean=True)
    except OSError as err:
        log.warning("clean_stop_marker_not_saved", error=err.strerror)
    said_offline = link.stop(timeout_s=min(3.0, max(0.5, deadline - time.monotonic())))
    # The agent's buffer, not the one it started with: a disk full at start-up opens it late.
    log.info("agent_stopped", backlog=agent.buffer.stats().count, offline_published=said_offline)
    agent.buffer.close()
    return EX_OK
