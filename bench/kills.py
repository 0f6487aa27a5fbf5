"""Kill loop: the real daemon ended by SIGKILL at a random moment, in start-up or running, over
and over (500 times; 100 with --quick), against the local mosquitto; then one clean run drains.
At a subscriber, every seq the agent ever gave must be there, contiguous from 1, in one epoch:
a kill -9 must neither lose a reading nor make the agent start a new seq series."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from agent.buffer.readonly import BufferView
from bench.child import PREFIX, SITE, Daemon, write_config
from bench.net import Broker
from bench.table import Row, info, judged
from simulator.virtual.collector import Collector

SEED = 500


def _buffer(state: Path) -> tuple[str, int, int]:
    """(epoch, last seq given, readings still buffered), as a technician's tool reads them."""
    with BufferView.open(state, busy_timeout_s=5) as view, view.snapshot() as buffer:
        stats = buffer.stats()
        return buffer.epoch, stats.last_seq, stats.count


def _drained(daemon: Daemon) -> bool:
    status = daemon.status()
    return status.get("backlog") == 0 and status.get("in_flight") == 0


def measure(broker: Broker, root: Path, logs: Path, *, quick: bool) -> list[Row]:
    kills = 100 if quick else 500
    rng = random.Random(SEED)
    state = root / "state"
    config = write_config(
        root,
        broker_url=broker.url(),
        interval_s=0.1,
        state_dir=state,
        status_dir=logs / "kills-status",
        broker={"batch_max_readings": 20},
    )
    log = logs / "agent-kills.log"
    started = time.monotonic()
    with Collector(broker.url(), PREFIX) as collector:
        ended_otherwise = 0  # runs that ended before their SIGKILL: a crash the loop must not hide
        for _ in range(kills):
            daemon = Daemon(config, state, log)
            try:
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0.0, 0.8))  # in start-up: imports, opening the buffer
                else:
                    daemon.wait_ready()  # its first round is committed: measuring, publishing
                    time.sleep(rng.uniform(0.0, 1.0))
            finally:
                ended_otherwise += daemon.proc.poll() is not None
                daemon.kill()
        # The clean run measures once and then only drains (rounds every 0.1 s, ~40 readings
        # each, would outrun 20-reading batches and never leave the buffer empty).
        drain = write_config(
            root / "drain",
            broker_url=broker.url(),
            interval_s=3600,
            state_dir=state,
            status_dir=logs / "kills-status",
            broker={"batch_max_readings": 20},
        )
        daemon = Daemon(drain, state, log)
        try:
            daemon.wait_ready()
            deadline = time.monotonic() + 120
            while not _drained(daemon) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            daemon.stop()
        epoch, last_seq, left = _buffer(state)
        collector.wait_for(SITE, range(1, last_seq + 1), 30, epoch=epoch)
        arrived = collector.seqs(SITE, epoch)
        epochs = collector.epochs(SITE)
        duplicates = collector.duplicates(SITE)
        conflicts = len(collector.conflicts(SITE))
    loop_s = time.monotonic() - started
    missing = set(range(1, last_seq + 1)) - arrived
    beyond = {s for s in arrived if s > last_seq}  # a seq the buffer does not know it gave
    conn = sqlite3.connect(state / "buffer.sqlite")
    try:
        intact = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return [
        info(f"kills: SIGKILLs, half in start-up, half running ({loop_s:.0f} s)", kills),
        info(
            "  kills: readings committed / delivered / left in the buffer",
            f"{last_seq:,} / {len(arrived):,} / {left:,}",
        ),
        judged(
            "  kills: readings lost (committed, never delivered)",
            len(missing),
            "",
            at_most=0,
            digits=0,
        ),
        judged("  kills: epochs at the subscriber", len(epochs), "", at_most=1, digits=0),
        judged(
            "  kills: seqs out of the buffer's range or repeats of another reading",
            len(beyond) + conflicts,
            "",
            at_most=0,
            digits=0,
        ),
        judged(
            "  kills: runs that ended before their SIGKILL",
            ended_otherwise,
            "",
            at_most=0,
            digits=0,
        ),
        info("  kills: duplicates (in-flight windows the kills cut)", duplicates, "", digits=0),
        info("  kills: buffer file integrity_check", "ok" if intact else "FAILED"),
    ]
