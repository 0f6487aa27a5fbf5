"""The real agent against a hostile or old broker: rows 27, 30 and 34 of the fault table, with the
readings counted."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from agent.contract.telemetry import decode_telemetry
from tests.support.agent_proc import AgentProcess, buffer_state, write_config
from tests.support.fake_broker import Behaviour, FakeBroker
from tests.support.faults import record

MIB = 1024 * 1024


def test_huge_packet_is_refused_and_rss_stays_bounded(tmp_path: Path) -> None:
    """Row 30: a broker announcing a 200 MiB PUBLISH; the agent drops it and stays small."""
    with FakeBroker(Behaviour(huge_publish=200 * MIB)) as fake:
        config = write_config(tmp_path, broker_url=fake.url())
        with AgentProcess(config) as agent:
            process = psutil.Process(agent.pid)
            peak = 0
            deadline = time.monotonic() + 30
            status: dict[str, object] = {}
            # Several reconnects, each met by another huge packet.
            while time.monotonic() < deadline and len(fake.seen) < 4:
                peak = max(peak, process.memory_info().rss)
                status = agent.status()
                time.sleep(0.02)
            status = agent.wait_status(
                "last_disconnect", lambda v: v is not None and "more than the agent takes" in v
            )
            peak = max(peak, process.memory_info().rss)
            assert agent.running()
            assert agent.terminate() == 0
        _tally("30 huge packet", "fake broker, 200 MiB PUBLISH", fake, agent)
    assert len(fake.seen) >= 2, "the agent reconnected after the drop"
    assert "Maximum Packet Size" in str(status["last_disconnect"])
    assert peak < 100 * MIB, f"peak RSS {peak / MIB:.0f} MiB"
    print(f"peak RSS {peak / MIB:.1f} MiB; the fake pushed {fake.sent_bytes / MIB:.1f} MiB")


def test_broker_that_never_acks_gets_a_reconnect_and_a_reason(tmp_path: Path) -> None:
    """Row 27: no PUBACK on the first connection: the agent reconnects, says why, and the readings
    sent then arrive again on the next connection."""
    with FakeBroker(Behaviour(puback=frozenset({1, 2, 3, 4, 5}))) as fake:
        config = write_config(tmp_path, broker_url=fake.url(), broker={"ack_timeout_s": 1.5})
        with AgentProcess(config) as agent:
            status = agent.wait_status(
                "last_disconnect", lambda v: v is not None and "PUBACK" in v, timeout_s=30
            )
            agent.wait_status("readings_acked", lambda v: v > 0, timeout_s=30)
            assert agent.terminate() == 0
    lost = _tally("27 broker never acks", "fake broker, no PUBACK", fake, agent)
    assert lost == 0
    assert "ack_timeout_s 1.5" in str(status["last_disconnect"])
    first, second = (_seqs(fake.seen[n].publishes) for n in (0, 1))
    assert first, "telemetry was sent on the connection that never acknowledged"
    assert first <= second, "every reading sent unacknowledged went again on the next connection"


def _tally(fault: str, injected: str, fake: FakeBroker, agent: AgentProcess) -> int:
    """Record the row: what the agent committed against what the fake acknowledged (a reading is
    lost if neither acknowledged nor still in the buffer). Return the readings lost."""
    acks = fake.behaviour.puback
    delivered: list[int] = []
    for index, seen in enumerate(fake.seen):
        if acks is None or index in acks:
            delivered += _ordered_seqs(seen.publishes)
    last_seq, remaining = buffer_state(agent.state_dir)
    committed = set(range(1, last_seq + 1))
    lost = len(committed - set(delivered) - remaining)
    record(
        fault,
        injected,
        committed=len(committed),
        delivered=len(set(delivered)),
        lost=lost,
        duplicated=len(delivered) - len(set(delivered)),
    )
    return lost


def _ordered_seqs(publishes: list[tuple[str, bytes]]) -> list[int]:
    return [
        reading.seq
        for topic, payload in publishes
        if topic.endswith("/telemetry")
        for reading in decode_telemetry(payload).readings
    ]


def _seqs(publishes: list[tuple[str, bytes]]) -> set[int]:
    return {
        reading.seq
        for topic, payload in publishes
        if topic.endswith("/telemetry")
        for reading in decode_telemetry(payload).readings
    }


def test_agent_on_a_broker_without_mqtt5_delivers_and_says_so(tmp_path: Path) -> None:
    """Row 34: the default config on a broker that refuses MQTT 5 delivers over 3.1.1; the status
    names the version and why, and the choice survives a restart."""
    with FakeBroker(Behaviour(refuse_v5="connack")) as fake:
        config = write_config(tmp_path, broker_url=fake.url())
        with AgentProcess(config) as agent:
            status = agent.wait_status("readings_acked", lambda v: v > 0, timeout_s=30)
            assert agent.terminate() == 0
        assert (status["broker_protocol"], status["broker_protocol_why"]) == ("3.1.1", "fallback")
        assert agent.log().count("broker_protocol_fallback") == 1
        tried = len(fake.seen)
        with AgentProcess(config) as again:
            status = again.wait_status("readings_acked", lambda v: v > 0, timeout_s=30)
            assert again.terminate() == 0
        lost = _tally("34 broker without MQTT 5", "fake broker, CONNACK 1 to v5", fake, again)
        assert lost == 0
        assert status["broker_protocol_why"] == "remembered"
        assert fake.seen[tried].protocol_level == 4
        # Both runs write one log file: the fallback was logged once, by the first.
        assert again.log().count("broker_protocol_fallback") == 1
