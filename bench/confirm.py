"""What the collector's confirmation costs a site (issue 18):

- disk writes per reading when acknowledged rounds are kept until the collector's ack (moved to
  the `delivered` table) against deleting them on PUBACK, with an ack every 15 or 60 rounds;
- the re-send of a 1,000-reading gap: topic and payload of the messages that carry it again;
- the ack itself: bytes of one ack message at the subscriber, and a month of them at a pace.
Disk figures come from a child process's /proc/self/io, with the buffer on the real disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from agent.buffer.store import Buffer
from agent.contract.ack import Ack, EpochAck, encode_ack
from agent.contract.telemetry import encode_telemetry
from agent.reading import Sample
from bench import samples
from bench.child import PREFIX, SITE
from bench.table import Row, info

GAP = 1000
BATCH = 500  # broker.batch_max_readings: the gap goes again in the drain's message size
# One ack message as it reaches the gateway on top of its MQTT bytes: an MQTT 5 PUBLISH header
# (fixed header, topic length, property length), a TLS 1.3 record (header, tag, content type),
# and one IPv4/TCP segment.
ACK_OVERHEAD_BYTES = 2 + 2 + 1 + 22 + 52
MONTH_S = 30 * 86400


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes"):
            return int(line.split()[1])
    return 0


def disk_per_reading(workdir: Path, rounds: int, ack_every: int) -> float:
    """Bytes written per reading over `rounds` realistic rounds, the previous round's acknowledged
    readings taken out in each commit; `ack_every` 0 means no collector ack ever."""
    workdir.mkdir(parents=True, exist_ok=True)
    buffer = Buffer.open(workdir / "buffer.sqlite", site=SITE, max_readings=1_000_000)
    if ack_every:
        buffer.apply_ack(Ack(ts_ms=1, epochs=(EpochAck(epoch="", through=0),)))
    base = samples.template(workdir / "template")
    acked: tuple[int, ...] = ()
    total = readings = 0
    before = _written()
    for index, (stamp, round_samples) in enumerate(
        samples.rounds(base, rounds, start_ms=1_772_400_000_000)
    ):
        appended = buffer.append(stamp, round_samples, delete=acked)
        assert appended.first_seq is not None and appended.last_seq is not None
        acked = tuple(range(appended.first_seq, appended.last_seq + 1))
        readings += len(round_samples)
        if ack_every and index % ack_every == ack_every - 1:
            through = appended.first_seq - 1
            ack = Ack(ts_ms=index + 2, epochs=(EpochAck(epoch="", through=through),))
            buffer.apply_ack(ack)
    total = _written() - before
    buffer.close()
    return total / readings


def _resend_bytes(base: list[Sample]) -> int:
    workdir_readings = []
    seq = 0
    for stamp, round_samples in samples.rounds(base, GAP // len(base) + 2, start_ms=1):
        for sample in round_samples:
            seq += 1
            workdir_readings.append((seq, stamp, sample))
    from agent.reading import Reading  # noqa: PLC0415

    readings = [
        Reading(seq=s, metric=x.metric, value=x.value, tags=x.tags, ts_ms=st.ts_ms,
                mono_ms=st.mono_ms, boot_id=st.boot_id, synced=st.synced)
        for s, st, x in workdir_readings[:GAP]
    ]  # fmt: skip
    topic = len(f"{PREFIX}/{SITE}/telemetry")
    return sum(
        topic + len(encode_telemetry(SITE, readings[i : i + BATCH], compress=True, schema=2))
        for i in range(0, GAP, BATCH)
    )


def measure(root: Path, *, quick: bool) -> list[Row]:
    root.mkdir(parents=True, exist_ok=True)
    rounds = 300 if quick else 1000
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.confirm", str(root / "disk"), str(rounds)],
        capture_output=True, text=True, check=True, timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    disk = json.loads(done.stdout.strip().splitlines()[-1])
    ack = encode_ack(
        Ack(ts_ms=1_772_400_000_000, epochs=(EpochAck(epoch="0" * 16, through=10**6),))
    )
    per_ack = len(f"{PREFIX}/{SITE}/ack") + len(ack) + ACK_OVERHEAD_BYTES
    resend = _resend_bytes(samples.template(root / "template"))
    return [
        info(
            f"disk with collector acks ({rounds} rounds): B/reading none / every 15 / every 60",
            f"{disk['0']:.0f} / {disk['15']:.0f} / {disk['60']:.0f}",
            "",
        ),
        info(
            f"re-send of a {GAP}-reading gap (topic + payload, {BATCH}-reading messages)",
            resend,
            "B",
            digits=0,
        ),
        info("one ack at the gateway (MQTT 5, TLS 1.3, one TCP segment)", per_ack, "B", digits=0),
        info(
            "acks a month: one per 15 min / per hour",
            f"{per_ack * MONTH_S / 900 / 2**20:.2f} / {per_ack * MONTH_S / 3600 / 2**20:.2f}",
            "MiB",
        ),
        info("  confirm: took", time.monotonic() - started, "s"),
    ]


if __name__ == "__main__":
    from agent import logs

    logs.configure("error", stream=sys.stderr)
    work, count = Path(sys.argv[1]), int(sys.argv[2])
    print(json.dumps({str(k): disk_per_reading(work / str(k), count, k) for k in (0, 15, 60)}))
