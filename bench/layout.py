"""Experiments that show where the bytes go, to choose improvements by number:

- payload layouts for the same realistic rounds: schema 1 (zlib JSON, an object per reading) per
  round and in 500-reading drain batches; the shipped schema 2 (agent/contract/telemetry_v2.py) the same two
  ways, with its preset dictionary and without; the experiments that led to it: a columnar batch
  (series listed once, seqs and times delta-coded), the same with the series table sent once per
  connection and referred to by digest, and that batched over 10 rounds;
- disk writes per reading split by cause: the round's commit (the previous round's acknowledged
  readings deleted in it) and the status.json rewrite; and what schema 1's row per reading cost.
Disk figures come from a child process's /proc/self/io, with the buffer on the real disk.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.contract.telemetry import encode_telemetry
from agent.reading import Reading
from bench import samples
from bench.child import PREFIX, SITE
from bench.table import Row, info

TOPIC_BYTES = len(f"{PREFIX}/{SITE}/telemetry")
DRAIN_BATCH = 500  # broker.batch_max_readings: what a backlog drain puts in one message


def _readings(base: list[samples.Sample], rounds: int) -> list[list[Reading]]:
    out, seq = [], 0
    for stamp, round_samples in samples.rounds(base, rounds, start_ms=1_772_400_000_000):
        batch = []
        for sample in round_samples:
            seq += 1
            batch.append(Reading(seq=seq, metric=sample.metric, value=sample.value,
                                 tags=sample.tags, ts_ms=stamp.ts_ms, mono_ms=stamp.mono_ms,
                                 boot_id=stamp.boot_id, synced=stamp.synced))  # fmt: skip
        out.append(batch)
    return out


def _series(readings: Sequence[Reading]) -> list[list[Any]]:
    seen: dict[tuple[str, str], int] = {}
    for r in readings:
        seen.setdefault((r.metric, json.dumps(dict(sorted(r.tags.items())))), len(seen))
    return [[m, json.loads(t)] for m, t in seen]


def columnar(site: str, rounds: Sequence[Sequence[Reading]], *, table_digest: bool) -> bytes:
    """One message for several rounds: per round the time delta and the values in series order;
    seqs are implicit (first seq + position), the boot and sync flag once."""
    flat = [r for batch in rounds for r in batch]
    series = _series(flat)
    digest = hashlib.sha256(json.dumps(series).encode()).hexdigest()[:8]
    body: dict[str, Any] = {
        "schema": 2, "site": site, "boot": flat[0].boot_id, "seq0": flat[0].seq,
        "ts0": rounds[0][0].ts_ms, "mono0": rounds[0][0].mono_ms, "synced": flat[0].synced,
        "series": digest if table_digest else series,
        "rounds": [[batch[0].ts_ms - rounds[0][0].ts_ms,
                    [round(r.value, 6) if r.value != int(r.value) else int(r.value)
                     for r in batch]] for batch in rounds],
    }  # fmt: skip
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 9)


def payload_rows(base: list[samples.Sample]) -> list[Row]:
    rounds = _readings(base, 60)
    count = sum(len(b) for b in rounds)

    def per_reading(messages: list[bytes]) -> float:
        return (sum(len(m) for m in messages) + TOPIC_BYTES * len(messages)) / count

    flat = [r for batch in rounds for r in batch]
    drains = [flat[i : i + DRAIN_BATCH] for i in range(0, len(flat), DRAIN_BATCH)]

    def schema_2_plain_zlib(batch: Sequence[Reading]) -> bytes:
        return zlib.compress(encode_telemetry(SITE, batch, compress=False), 9)

    today = [encode_telemetry(SITE, batch, schema=1) for batch in rounds]
    today_drain = [encode_telemetry(SITE, batch, schema=1) for batch in drains]
    col = [columnar(SITE, [b], table_digest=False) for b in rounds]
    ref = [columnar(SITE, [b], table_digest=True) for b in rounds]
    ref10 = [columnar(SITE, rounds[i : i + 10], table_digest=True) for i in range(0, 60, 10)]
    two = [encode_telemetry(SITE, batch) for batch in rounds]
    two_plain = [schema_2_plain_zlib(batch) for batch in rounds]
    two_drain = [encode_telemetry(SITE, batch) for batch in drains]
    two_drain_plain = [schema_2_plain_zlib(batch) for batch in drains]
    per_round = f"{len(flat) / len(rounds):.0f} readings"
    return [
        info(f"layout: schema 1 (today), one message per round ({per_round})", per_reading(today),
             "B/reading"),
        info(f"  schema 1, {DRAIN_BATCH}-reading drain batches", per_reading(today_drain),
             "B/reading"),
        info("layout: schema 2 (shipped), one message per round", per_reading(two), "B/reading"),
        info("  schema 2, one message per round, zlib without the dictionary",
             per_reading(two_plain), "B/reading"),
        info(f"  schema 2, {DRAIN_BATCH}-reading drain batches", per_reading(two_drain),
             "B/reading"),
        info(f"  schema 2, {DRAIN_BATCH}-reading drain batches, without the dictionary",
             per_reading(two_drain_plain), "B/reading"),
        info("layout: columnar, series listed per message", per_reading(col), "B/reading"),
        info("layout: columnar, series table by digest", per_reading(ref), "B/reading"),
        info("layout: columnar by digest, 10 rounds per message", per_reading(ref10), "B/reading"),
    ]  # fmt: skip


def disk_mix(state: Path, rounds: int) -> dict[str, float]:
    """Write `rounds` rounds as the daemon does (the previous round's acknowledged readings deleted
    in the commit that appends the next), counting write_bytes per cause."""
    from agent.buffer.store import Buffer  # noqa: PLC0415
    from agent.files import replace_json  # noqa: PLC0415

    def written() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        return 0

    base = samples.template(state / "template")
    buffer = Buffer.open(state / "buffer.sqlite", site=SITE, max_readings=1_000_000)
    status = {"site": SITE, "backlog": 0, "broker_state": "connected", "pad": "x" * 600}
    cost = {"round": 0, "status": 0}
    readings = 0
    acked: range = range(0)
    for stamp, round_samples in samples.rounds(base, rounds, start_ms=1_772_400_000_000):
        before = written()
        appended = buffer.append(stamp, round_samples, delete=acked)
        cost["round"] += written() - before
        assert appended.first_seq is not None and appended.last_seq is not None
        acked = range(appended.first_seq, appended.last_seq + 1)
        before = written()
        replace_json(state / "status.json", status)
        cost["status"] += written() - before
        readings += len(round_samples)
    buffer.close()
    out = {key: value / readings for key, value in cost.items()}
    for name, page in (("rows1024", 1024), ("rows512", 512)):
        out[name] = (
            _row_per_reading(state / f"{name}.sqlite", base, rounds, page, written) / readings
        )
    return out


# Buffer schema 1, a row per reading, kept here to show what the round-per-row layout saves.
_ROWS_SCHEMA = """
CREATE TABLE series (id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL);
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, series INTEGER NOT NULL, value REAL NOT NULL,
    ts_ms INTEGER NOT NULL, mono_ms INTEGER NOT NULL, boot INTEGER NOT NULL, clock INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


def _row_per_reading(
    path: Path, base: list[samples.Sample], rounds: int, page_size: int, written: Any
) -> int:
    """The same rounds in schema 1's layout, one commit per round (still WAL, synchronous=FULL)."""
    import sqlite3  # noqa: PLC0415

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_ROWS_SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('count', 0)")
    series: dict[tuple[str, str], int] = {}
    total = 0
    for stamp, round_samples in samples.rounds(base, rounds, start_ms=1_772_400_000_000):
        before = written()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM readings")  # what the broker acknowledged since the last round
        rows = []
        for s in round_samples:
            key = (s.metric, json.dumps(dict(sorted(s.tags.items()))))
            if key not in series:
                conn.execute("INSERT INTO series (metric, tags) VALUES (?, ?)", key)
                series[key] = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
            rows.append((series[key], s.value, stamp.ts_ms, stamp.mono_ms, 1, 1))
        conn.executemany("INSERT INTO readings (series, value, ts_ms, mono_ms, boot, clock) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
        conn.execute("UPDATE meta SET value = ? WHERE key = 'count'", (len(rows),))
        conn.execute("COMMIT")
        total += written() - before
    conn.close()
    return total


def measure(root: Path, payloads: list[tuple[str, bytes]], *, quick: bool) -> list[Row]:
    del payloads  # the experiment makes its own rounds, so it runs without the steady section
    root.mkdir(parents=True, exist_ok=True)
    rows = payload_rows(samples.template(root / "template"))
    rounds = 300 if quick else 1000
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.layout", str(root / "disk"), str(rounds)],
        capture_output=True, text=True, check=True, timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    mix = json.loads(done.stdout.strip().splitlines()[-1])
    rows += [
        info(
            f"disk mix ({rounds} rounds, in-process): B/reading round commit / status file",
            f"{mix['round']:.0f} / {mix['status']:.0f}",
            "",
        ),
        info(
            "  disk: schema 1's row per reading instead, page 1024 / 512",
            f"{mix['rows1024']:.0f} / {mix['rows512']:.0f}",
            "B/reading",
        ),
        info("  disk mix: took", time.monotonic() - started, "s"),
    ]
    return rows


if __name__ == "__main__":
    from agent import logs

    logs.configure("error", stream=sys.stderr)
    print(json.dumps(disk_mix(Path(sys.argv[1]), int(sys.argv[2]))))
