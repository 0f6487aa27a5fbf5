"""`buffer export` / `buffer import`: unsent readings carried on a USB stick reach the collector once."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.buffer.readonly import BufferView
from agent.buffer.store import Buffer
from agent.cli.transfer import (
    BadExport,
    BrokerRefused,
    export_buffer,
    import_export,
    read_transfer_key,
    verify_export,
    write_signed,
)
from agent.config.load import load_config
from agent.config.schema import Config
from agent.contract.telemetry import encode_telemetry
from agent.reading import Sample, Stamp
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, write_config
from tests.support.mqtt_broker import Broker, BrokerFactory

REPO = Path(__file__).resolve().parents[2]
PREFIX = "desa/test"
SITE = "test-site-01"


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    # umask 022, as in a root shell: the agent itself must make its files 0640.
    return subprocess.run(
        [sys.executable, "-m", "agent", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
        umask=0o022,
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


def _export(config: Config, out: Path) -> None:
    key = read_transfer_key(config.transfer.key_file)
    export_buffer(config.state_dir, out, key=key, now=1_780_000_000.0, clock_synced=True)


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
    _export(config, out)
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
    header = {"format": "village-agent-buffer-export", "version": 2, "site": SITE,
              "count": len(readings), "first_seq": 1, "exported_at": 0, "clock_synced": True,
              "agent_version": "x"}  # fmt: skip
    out = tmp_path / "export.jsonl.gz"
    lines = [
        json.dumps(header).encode() + b"\n",
        encode_telemetry(SITE, readings[:25], compress=False, schema=2) + b"\n",
        encode_telemetry(SITE, readings[25:], compress=False, schema=1) + b"\n",
    ]
    write_signed(out, lines, read_transfer_key(config.transfer.key_file))
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
    _export(config, out)
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
    _export(config, out)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(BadExport):
        import_export(out, config)
    done = _cli("buffer", "import", str(out), "--config", str(config_file))
    assert done.returncode == 65
    assert "damaged or truncated" in done.stderr


class _Everything:
    """A subscriber to every topic of the test broker, to prove that nothing was published."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[str] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = lambda _c, _u, message: self.messages.append(message.topic)
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.subscribe("#", qos=1)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def seen_after_a_sentinel(self) -> list[str]:
        """Everything received before a sentinel published now has come back (same broker,
        in order), so an empty list means nothing was published."""
        self._client.publish("sentinel/done", b"1", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while "sentinel/done" not in self.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        self._client.loop_stop()
        self._client.disconnect()
        assert "sentinel/done" in self.messages
        return [t for t in self.messages if t != "sentinel/done"]


def _unpacked(path: Path) -> list[bytes]:
    with gzip.open(path) as packed:
        return list(packed)


def _hostile_files(config: Config, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each way a file can lie, with the words the refusal must contain."""
    genuine = tmp_path / "genuine.jsonl.gz"
    _export(config, genuine)
    lines = _unpacked(genuine)
    key = read_transfer_key(config.transfer.key_file)
    files: dict[str, tuple[Path, str]] = {}

    def made(name: str, body: list[bytes], sign_with: bytes | None, words: str) -> None:
        path = tmp_path / f"{name}.jsonl.gz"
        if sign_with is None:
            with gzip.open(path, "wb") as packed:
                packed.writelines(body)
        else:
            write_signed(path, body, sign_with)
        files[name] = (path, words)

    altered = [lines[0], lines[1].replace(b'"test.a"', b'"test.z"'), *lines[2:]]
    made("altered", altered, None, "signature does not match")
    forged = [lines[0], *lines[1:-1], b'{"hmac_sha256": "' + b"0" * 64 + b'"}\n']
    made("forged", forged, None, "signature does not match")
    made("truncated", lines[:-1], None, "no signature line")
    made("resigned", lines[:-1], b"another-site-key-0123456789abcdef", "signature does not match")
    other = [lines[0].replace(SITE.encode(), b"other-site-02"), *lines[1:-1]]
    made("cross_site", other, b"other-site-key-0123456789abcdefgh", "made for site 'other-site-02'")
    dollar = [lines[0].replace(f'"{SITE}"'.encode(), b'"$SYS/x"'), *lines[1:-1]]
    made("dollar_site", dollar, key, "not a valid site id")
    raw = genuine.read_bytes()
    made("cut_gzip", [], None, "")
    files["cut_gzip"][0].write_bytes(raw[: len(raw) // 2])
    files["cut_gzip"] = (files["cut_gzip"][0], "damaged or truncated")
    return files


def test_forged_altered_truncated_resigned_and_cross_site_files_publish_nothing(
    tmp_path: Path, broker: Broker
) -> None:
    """Each hostile export is refused with exit 65 naming the line and what is wrong, before a
    connection is made: a subscriber to every topic receives nothing."""
    config_file = write_config(tmp_path / "site", broker_url=broker.url())
    config = load_config(config_file)
    _fill(config.state_dir, 300)
    files = _hostile_files(config, tmp_path)
    watcher = _Everything(broker)
    for name, (path, words) in files.items():
        done = _cli("buffer", "import", str(path), "--config", str(config_file))
        assert done.returncode == 65, (name, done.stderr)
        assert words in done.stderr and "nothing was sent" in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr
        assert not path.with_name(path.name + ".progress").exists()
    assert watcher.seen_after_a_sentinel() == []


def test_export_without_a_transfer_key_fails_clearly(tmp_path: Path, broker: Broker) -> None:
    """With no key file, export writes nothing and says where the key belongs (exit 78)."""
    config_file = write_config(tmp_path / "site", broker_url=broker.url())
    config = load_config(config_file)
    _fill(config.state_dir, 3)
    config.transfer.key_file.unlink()
    out = tmp_path / "export.jsonl.gz"
    done = _cli("buffer", "export", "--out", str(out), "--config", str(config_file))
    assert done.returncode == 78
    assert f"cannot read the transfer key {config.transfer.key_file}" in done.stderr
    assert not out.exists()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_hand_run_commands_make_files_0640_and_directories_0750(
    tmp_path: Path, broker: Broker
) -> None:
    """Run from a root shell (umask 022), `run` makes state_dir 0750 and the buffer 0640, and
    export and import make their files 0640: nothing for every user on the gateway to read."""
    config_file = write_config(tmp_path / "site", broker_url=broker.url())
    config = load_config(config_file)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o022,
    )
    try:
        deadline = time.monotonic() + 30
        while not (config.state_dir / "buffer.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        agent.terminate()
        assert agent.wait(30) == 0
    assert _mode(config.state_dir) == 0o750
    assert _mode(config.state_dir / "buffer.sqlite") == 0o640
    _fill(config.state_dir, 5)  # unsent readings, so that import has something to acknowledge
    out = tmp_path / "export.jsonl.gz"
    assert _cli("buffer", "export", "--out", str(out), "--config", str(config_file)).returncode == 0
    assert _mode(out) == 0o640
    done = _cli("buffer", "import", str(out), "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert _mode(out.with_name(out.name + ".progress")) == 0o640


def test_every_line_carries_the_buffer_epoch_and_a_line_of_another_is_refused(
    tmp_path: Path,
) -> None:
    """Export names the buffer's epoch in the header and every line; a file mixing epochs (two
    buffers' exports pasted together, signed with the right key) is refused, since seqs repeat
    across epochs."""
    config = load_config(
        write_config(tmp_path / "site", broker_url="mqtt://127.0.0.1:1", interval_s=0.2)
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    _fill(config.state_dir, 300)
    buffer = Buffer.open(config.state_dir / "buffer.sqlite", site=SITE, max_readings=100_000)
    epoch = buffer.epoch
    buffer.close()
    out = tmp_path / "export.jsonl.gz"
    _export(config, out)
    with gzip.open(out) as packed:
        header, *lines, _signature = (json.loads(line) for line in packed)
    assert header["epoch"] == epoch
    assert len(lines) == 2 and {line["epoch"] for line in lines} == {epoch}
    key = read_transfer_key(config.transfer.key_file)
    with out.open("rb") as handle:
        verify_export(out, handle, config, key)
    lines[1]["epoch"] = "0000000000000000"
    mixed = tmp_path / "mixed.jsonl.gz"
    write_signed(mixed, [json.dumps(obj).encode() + b"\n" for obj in (header, *lines)], key)
    with mixed.open("rb") as handle, pytest.raises(BadExport, match=r"line 3: .*another seq epoch"):
        verify_export(mixed, handle, config, key)
