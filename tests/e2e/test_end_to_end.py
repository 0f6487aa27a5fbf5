"""The agent end to end: a real agent process, a real mosquitto, a subscriber checking every seq."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.contract.telemetry import decode_telemetry
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until, write_config
from tests.support.certs import Pki, make_ca
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup

SITE = "test-site-01"
PREFIX = "desa/test"


def _delivered_all(agent: AgentProcess, collector: Collector, timeout_s: float = 20.0) -> None:
    """Wait until every seq the agent committed has arrived or... nothing else: arrival is the test."""
    last_seq, _ = buffer_state(agent.state_dir)
    assert collector.wait_for(SITE, range(1, last_seq + 1), timeout_s), (
        f"missing seqs: {sorted(set(range(1, last_seq + 1)) - collector.seqs(SITE))[:20]}\n{agent.log()}"
    )


def test_readings_of_all_three_families_arrive_by_the_contract(
    tmp_path: Path, broker: Broker
) -> None:
    """Throughput, latency and uptime readings arrive on the telemetry topic and decode."""
    config = write_config(tmp_path, broker_url=broker.url())
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        wait_until(
            lambda: (
                {r.metric.split(".")[0] for r in collector.readings(SITE)}
                >= {"throughput", "latency", "uptime"}
            ),
            20,
            f"families missing; log:\n{agent.log()}",
        )
        assert agent.terminate() == 0
    readings = collector.readings(SITE)
    assert not collector.rejected
    metrics = {r.metric for r in readings}
    assert {"latency.rtt_avg_ms", "latency.loss_percent", "uptime.system_s"} <= metrics
    assert any(m.startswith("throughput.") and m.endswith("_bps") for m in metrics)
    for reading in readings:
        assert reading.seq >= 1
        assert reading.ts_ms > 1_600_000_000_000
        assert all(isinstance(v, str) for v in reading.tags.values())
    latency = [r for r in readings if r.metric == "latency.rtt_avg_ms"]
    assert latency[0].tags["target"] == "127.0.0.1"
    assert latency[0].tags["method"] in {"icmp-raw", "icmp-dgram", "tcp"}
    # The retained status ends `offline` after a clean stop.
    assert json.loads(collector.sites[SITE].status or "{}")["state"] == "offline"


def test_payload_is_zlib_compressed_json_by_default(tmp_path: Path, broker: Broker) -> None:
    """Telemetry payloads are RFC 1950 zlib streams that decode to the contract's object, schema 2
    unless the config says otherwise."""
    import paho.mqtt.client as mqtt

    payloads: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, m: payloads.append(m.payload)
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"{PREFIX}/+/telemetry", qos=1)
    sub.loop_start()
    try:
        config = write_config(tmp_path, broker_url=broker.url())
        with AgentProcess(config) as agent:
            wait_until(lambda: len(payloads) >= 2, 20, agent.log())
            agent.terminate()
    finally:
        sub.loop_stop()
    assert payloads[0][:1] == b"\x78"  # zlib header, not '{'
    assert payloads[0][1] & 0x20  # FDICT: schema 2 deflates with its preset dictionary
    batch = decode_telemetry(payloads[0])
    assert batch.site == SITE and batch.schema == 2 and batch.readings


def test_broker_outage_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    """Readings taken while the broker is down arrive after it returns, with no gap in seq."""
    config = write_config(tmp_path, broker_url=broker.url())
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
        collector.stop()
        broker.stop()
        before, _ = buffer_state(agent.state_dir)
        wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 20, 20, "no rounds buffered")
        agent.wait_status("broker_state", lambda s: s != "connected", 10)
        # Hold the agent while the collector resubscribes, so nothing is published unheard.
        agent.pause()
        broker.restart()
        collector.start()
        agent.resume()
        agent.wait_status("broker_state", lambda s: s == "connected", 20)
        _delivered_all(agent, collector)
        assert agent.terminate() == 0
    last_seq, remaining = buffer_state(agent.state_dir)
    report = collector.completeness(SITE, range(1, last_seq + 1))
    # Readings buffered at the very end may still be on disk: those are not lost either.
    assert set(report.lost) <= remaining
    assert report.delivered >= last_seq - len(remaining)


def test_kill_9_mid_run_then_restart_continues_seq(tmp_path: Path, broker: Broker) -> None:
    """After kill -9 and a restart, seq continues with no gap; duplicates stay within the window."""
    config = write_config(tmp_path, broker_url=broker.url(), broker={"batch_max_readings": 20})
    with Collector(broker.url(), PREFIX) as collector:
        for _ in range(3):
            with AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 5, 20, agent.log())
                time.sleep(0.4)
                agent.kill()
        with AgentProcess(config) as agent:
            time.sleep(1.0)
            assert agent.terminate() == 0
        last_seq, remaining = buffer_state(agent.state_dir)
        assert collector.wait_for(SITE, set(range(1, last_seq + 1)) - remaining, 20)
        report = collector.completeness(SITE, range(1, last_seq + 1))
    assert set(report.lost) <= remaining
    # Each kill can re-send at most the in-flight window: 4 messages of 20 readings.
    assert report.duplicates <= 3 * 4 * 20
    seqs = sorted(collector.seqs(SITE) | remaining)
    assert seqs == list(range(1, last_seq + 1))


def test_negative_puback_keeps_rows_in_the_buffer(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """With MQTT 5, a publish the broker's ACL refuses is not deleted from the buffer."""
    # Anonymous clients may write their status but not telemetry.
    broker = broker_factory(acl=f"topic readwrite {PREFIX}/+/status\n")
    config = write_config(tmp_path, broker_url=broker.url())
    with AgentProcess(config) as agent:
        status = agent.wait_status("rejected_total", lambda n: n >= 1, 20)
        assert "refused" in (status["last_error"] or "")
        time.sleep(1.0)
        assert agent.terminate() == 0
    last_seq, remaining = buffer_state(agent.state_dir)
    assert last_seq > 0
    assert remaining == set(range(1, last_seq + 1))


def test_tls_with_client_certificate_delivers(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """A TLS broker demanding client certificates accepts the agent's CA-verified connection."""
    tls = TlsSetup(
        ca_file=pki.ca.cert_file,
        cert_file=pki.server.cert_file,
        key_file=pki.server.key_file,
        require_client_cert=True,
    )
    broker = broker_factory(tls=tls)
    config = write_config(
        tmp_path,
        broker_url=broker.url(),
        broker={
            "ca_file": str(pki.ca.cert_file),
            "cert_file": str(pki.client.cert_file),
            "key_file": str(pki.client.key_file),
        },
    )
    with AgentProcess(config) as agent:
        status = agent.wait_status("readings_acked", lambda n: n > 0, 20)
        assert status["broker_state"] == "connected"
        assert agent.terminate() == 0


def test_tls_with_the_wrong_ca_is_refused(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """A broker whose certificate another CA signed is refused; nothing is sent, all is kept."""
    tls = TlsSetup(
        ca_file=pki.ca.cert_file, cert_file=pki.server.cert_file, key_file=pki.server.key_file
    )
    broker = broker_factory(tls=tls)
    other_ca = make_ca(tmp_path / "other-ca", "Some Other CA")
    config = write_config(
        tmp_path, broker_url=broker.url(), broker={"ca_file": str(other_ca.cert_file)}
    )
    with AgentProcess(config) as agent:
        status = agent.wait_status("last_error", lambda e: bool(e) and "TLS" in e, 20)
        assert status["broker_state"] == "unreachable"
        assert "not trusted" in status["last_error"]
        assert agent.terminate() == 0
    last_seq, remaining = buffer_state(agent.state_dir)
    assert last_seq > 0 and remaining == set(range(1, last_seq + 1))


def test_no_broker_reachable_still_measures_and_buffers(tmp_path: Path) -> None:
    """With no broker at all the agent starts, measures, buffers and says it is waiting."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    with AgentProcess(config) as agent:
        agent.wait_status("backlog", lambda n: n > 10, 20)
        status = agent.wait_status("broker_state", lambda s: s == "unreachable", 10)
        assert "cannot reach the broker" in status["last_error"]
        assert agent.terminate() == 0
    assert "broker_unreachable" in agent.log()
    last_seq, remaining = buffer_state(agent.state_dir)
    assert remaining == set(range(1, last_seq + 1))


def test_sigterm_says_offline_and_exits_zero_quickly(tmp_path: Path, broker: Broker) -> None:
    """SIGTERM publishes the retained `offline` status and exits 0 well within 10 s."""
    config = write_config(tmp_path, broker_url=broker.url(), interval_s=5)
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        wait_until(lambda: collector.sites[SITE].status is not None, 20, agent.log())
        assert json.loads(collector.sites[SITE].status or "{}")["state"] == "online"
        started = time.monotonic()
        assert agent.terminate(timeout_s=10) == 0
        took = time.monotonic() - started
        wait_until(
            lambda: json.loads(collector.sites[SITE].status or "{}")["state"] == "offline", 5
        )
    assert took < 10
    marker = json.loads((agent.state_dir / "run.json").read_text())
    assert marker["clean"] is True


def test_bad_config_reports_every_error_with_exit_78(tmp_path: Path) -> None:
    """A broken config names the file and every bad key, and the process exits with 78."""
    import subprocess
    import sys

    bad = tmp_path / "agent.yaml"
    bad.write_text(
        "site_id: Kukar 01\nstate_dir: /tmp/x\ninterval_s: -1\n"
        "broker:\n  url: http://collector\n  topic_prefix: desa/#\n  keepalive: 60\n"
        "latency:\n  count: five\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    for path in (
        "site_id",
        "interval_s",
        "broker.url",
        "broker.topic_prefix",
        "broker.keepalive",
        "latency.count",
    ):
        assert f"At '{path}'" in result.stderr
    assert str(bad) in result.stderr
    assert "did you mean 'keepalive_s'" in result.stderr


def test_a_second_agent_on_the_same_state_dir_refuses_to_start(tmp_path: Path) -> None:
    """Two agents on one buffer would both send and delete its rows: the second one exits 75."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    with AgentProcess(config) as first:
        first.wait_status("backlog", lambda n: n > 0, 20)
        second = AgentProcess(config).start()
        assert second.wait(20) == 75
        assert "state_dir_in_use" in second.log()
        assert first.running()
        assert first.terminate() == 0
