"""`buffer export` / `buffer import`: unsent readings carried on a USB stick reach the collector once."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.buffer.readonly import BufferView
from agent.buffer.store import Buffer
from agent.cli.transfer import (
    BadExport,
    BrokerRefused,
    export_buffer,
    import_export,
    verify_export,
)
from agent.config.load import load_config
from agent.contract.telemetry import encode_telemetry
from agent.reading import Sample, Stamp
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, write_config
from tests.support.mqtt_broker import Broker, BrokerFactory

REPO = Path(__file__).resolve().parents[2]
PREFIX = "desa/test"
SITE = "test-site-01"


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def _fill(state_dir: Path, rounds: int) -> set[int]:
    """A buffer holding `rounds` rounds of two readings each; return their seqs."""
    buffer = Buffer.open(state_dir / "buffer.sqlite", site=SITE, max_readings=100_000)
    for i in range(rounds):
        stamp = Stamp(ts_ms=1_780_000_000_000 + i, mono_ms=i, boot_id="boot-a", synced=i % 2 == 0)
        samples = [
            Sample(metric="test.a", value=i, tags={"k": "v"}),
            Sample(metric="test.b", value=0.5),
        ]
        buffer.append(stamp, samples)
    seqs = {r.seq for r in buffer.oldest(limit=100_000)}
    buffer.close()
    return seqs


def test_export_then_import_delivers_every_unsent_reading_once(
    tmp_path: Path, broker: Broker
) -> None:
    """An agent that never reached its broker: export, then import, and the collector sees every seq
    of the buffer exactly once, with the values, times and clock flags the agent recorded."""
    url = broker.url()
    broker.stop()
    config = write_config(tmp_path / "site", broker_url=url, interval_s=0.2)
    with AgentProcess(config) as agent:
        agent.wait_status("backlog", lambda v: isinstance(v, int) and v >= 40)
        assert agent.terminate() == 0
    _last, unsent = buffer_state(tmp_path / "site" / "state")
    assert len(unsent) >= 40
    out = tmp_path / "usb" / "export.jsonl.gz"
    out.parent.mkdir()
    done = _cli("buffer", "export", "--out", str(out), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"exported {len(unsent)} unsent readings" in done.stdout
    with gzip.open(out) as packed:
        header = json.loads(packed.readline())
    assert (header["site"], header["count"]) == (SITE, len(unsent))
    with BufferView.open(tmp_path / "site" / "state") as view:
        assert header["epoch"] == view.backlog().epoch != ""
    broker.start()
    with Collector(url, PREFIX) as collector:
        done = _cli("buffer", "import", str(out), "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert collector.wait_for(SITE, unsent, timeout_s=10)
        ledger = collector.sites[SITE].series(header["epoch"])
        assert set(ledger.copies) == unsent
        assert set(ledger.copies.values()) == {1}
        assert collector.epochs(SITE) == [header["epoch"]]
    assert f"{len(unsent)}/{len(unsent)} readings acknowledged" in done.stdout
    # The buffer itself is untouched: the daemon may still send them later; the collector dedupes.
    assert buffer_state(tmp_path / "site" / "state")[1] == unsent


def test_interrupted_import_resumes_and_resends_only_unacknowledged(
    tmp_path: Path, broker: Broker
) -> None:
    """Stopped after a few acknowledged batches, a second run sends the rest: nothing lost, and no
    batch the broker had acknowledged is sent again."""
    config_file = write_config(
        tmp_path / "site",
        broker_url=broker.url(),
        broker={"batch_max_readings": 10, "inflight_max": 1},
    )
    config = load_config(config_file)
    seqs = _fill(config.state_dir, 100)
    out = tmp_path / "export.jsonl.gz"
    export_buffer(config.state_dir, out, now=1_780_000_000.0, clock_synced=True)
    progress = out.with_name(out.name + ".progress")

    def acked_so_far() -> int:
        if not progress.exists():
            return 0
        return sum(b - a + 1 for a, b in json.loads(progress.read_text())["acked"])

    with Collector(broker.url(), PREFIX) as collector:
        first = import_export(out, config, should_stop=lambda: acked_so_far() >= 50)
        assert not first.complete
        assert 50 <= first.sent_now < len(seqs)
        acked_first = {
            s for a, b in json.loads(progress.read_text())["acked"] for s in range(a, b + 1)
        }
        second = import_export(out, config)
        assert second.complete
        assert second.already == len(acked_first)
        assert collector.wait_for(SITE, seqs, timeout_s=10)
        ledger = collector.sites[SITE].series()
        assert all(ledger.copies[s] == 1 for s in acked_first)
        assert ledger.duplicates <= 10  # at most the one batch in flight when the first run stopped
    third = import_export(out, config)
    assert (third.sent_now, third.complete) == (0, True)


def test_import_reads_schema_2_lines_and_publishes_the_configured_schema(
    tmp_path: Path, broker: Broker
) -> None:
    """An export whose lines are schema 2 (and one schema 1) imports whole, and the messages on
    the wire are in the schema the config asks for (1, for a province whose collector reads 1)."""
    config = load_config(
        write_config(tmp_path / "site", broker_url=broker.url(), broker={"payload_schema": 1})
    )
    state = tmp_path / "filled"
    state.mkdir()
    seqs = _fill(state, 30)
    buffer = Buffer.open(state / "buffer.sqlite", site=SITE, max_readings=100_000)
    readings = buffer.oldest(limit=100)
    buffer.close()
    header = {"format": "village-agent-buffer-export", "version": 1, "site": SITE,
              "count": len(readings), "first_seq": 1, "exported_at": 0, "clock_synced": True,
              "agent_version": "x"}  # fmt: skip
    out = tmp_path / "export.jsonl.gz"
    with gzip.open(out, "wb") as packed:
        packed.write(json.dumps(header).encode() + b"\n")
        packed.write(encode_telemetry(SITE, readings[:25], compress=False, schema=2) + b"\n")
        packed.write(encode_telemetry(SITE, readings[25:], compress=False, schema=1) + b"\n")
    with Collector(broker.url(), PREFIX) as collector:
        done = import_export(out, config)
        assert done.complete and done.sent_now == len(seqs)
        assert collector.wait_for(SITE, seqs, timeout_s=10)
        assert collector.readings(SITE) == readings
        assert dict(collector.sites[SITE].schemas) == {1: done.messages}


def test_rejected_telemetry_stops_the_import_with_nothing_marked_done(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """A broker whose ACL forbids the topic answers a negative PUBACK (MQTT 5): the import stops
    with the broker's reason and records no batch as acknowledged."""
    broker = broker_factory(acl=f"topic read {PREFIX}/#\n")
    config = load_config(write_config(tmp_path / "site", broker_url=broker.url()))
    _fill(config.state_dir, 5)
    out = tmp_path / "export.jsonl.gz"
    export_buffer(config.state_dir, out, now=1_780_000_000.0, clock_synced=True)
    with pytest.raises(BrokerRefused, match="refused telemetry"):
        import_export(out, config, stall_timeout_s=10)
    progress = out.with_name(out.name + ".progress")
    assert not progress.exists() or json.loads(progress.read_text())["acked"] == []


def test_truncated_export_is_refused_before_anything_is_sent(
    tmp_path: Path, broker: Broker
) -> None:
    """A file cut short (a USB stick pulled too early) fails verification: exit 65, nothing sent."""
    config_file = write_config(tmp_path / "site", broker_url=broker.url())
    config = load_config(config_file)
    _fill(config.state_dir, 400)
    out = tmp_path / "export.jsonl.gz"
    export_buffer(config.state_dir, out, now=1_780_000_000.0, clock_synced=True)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(BadExport):
        import_export(out, config)
    done = _cli("buffer", "import", str(out), "--config", str(config_file))
    assert done.returncode == 65
    assert "damaged or truncated" in done.stderr


def test_every_line_carries_the_buffer_epoch_and_a_line_of_another_is_refused(
    tmp_path: Path,
) -> None:
    """Export names the buffer's epoch in the header and every line; a file mixing epochs (two
    buffers' exports pasted together) is refused, since seqs repeat across epochs."""
    state = tmp_path / "state"
    state.mkdir()
    _fill(state, 300)
    buffer = Buffer.open(state / "buffer.sqlite", site=SITE, max_readings=100_000)
    epoch = buffer.epoch
    buffer.close()
    out = tmp_path / "export.jsonl.gz"
    export_buffer(state, out, now=1_780_000_000.0, clock_synced=True)
    with gzip.open(out) as packed:
        header, *lines = (json.loads(line) for line in packed)
    assert header["epoch"] == epoch
    assert len(lines) == 2 and {line["epoch"] for line in lines} == {epoch}
    verify_export(out)
    lines[1]["epoch"] = "0000000000000000"
    mixed = tmp_path / "mixed.jsonl.gz"
    with gzip.open(mixed, "wb") as packed:
        for obj in (header, *lines):
            packed.write(json.dumps(obj).encode() + b"\n")
    with pytest.raises(BadExport, match="line 3: another seq epoch"):
        verify_export(mixed)
