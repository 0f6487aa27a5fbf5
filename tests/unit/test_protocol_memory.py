"""What `broker.protocol: auto` remembers per broker, on an injected wall clock."""

from __future__ import annotations

from pathlib import Path

from agent.config.schema import BrokerConfig
from agent.files import PROTOCOL_FILE
from agent.publish.protocol import RETRY_V5_AFTER_S, ProtocolMemory

AUTO = BrokerConfig(url="mqtt://127.0.0.1:1999", topic_prefix="p")
OTHER = BrokerConfig(url="mqtt://127.0.0.2:1999", topic_prefix="p")


class Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_fallback_is_kept_per_broker_across_restarts_for_a_day(tmp_path: Path) -> None:
    """Remembered for that URL only, read back by a new instance, and dropped after a day."""
    wall = Wall(1_800_000_000.0)
    memory = ProtocolMemory(tmp_path, wall=wall)
    assert memory.choose(AUTO).version == "5"
    assert memory.fell_back(AUTO, "closed") is True
    assert memory.fell_back(AUTO, "closed") is False  # news only once: logged once
    again = ProtocolMemory(tmp_path, wall=wall)
    choice = again.choose(AUTO)
    assert (choice.version, choice.why, choice.detail) == ("3.1.1", "remembered", "closed")
    assert again.choose(OTHER).version == "5"
    wall.now += RETRY_V5_AFTER_S
    assert again.choose(AUTO).version == "5"


def test_a_clock_stepped_back_retries_mqtt5(tmp_path: Path) -> None:
    """A date in the future (the clock went back after a power cut) is not trusted."""
    wall = Wall(1_800_000_000.0)
    ProtocolMemory(tmp_path, wall=wall).fell_back(AUTO, "closed")
    wall.now = 0.0
    assert ProtocolMemory(tmp_path, wall=wall).choose(AUTO).version == "5"


def test_mqtt5_accepted_forgets_the_fallback(tmp_path: Path) -> None:
    """After an upgrade the broker takes 5: the entry goes from the file."""
    memory = ProtocolMemory(tmp_path, wall=Wall(1_800_000_000.0))
    memory.fell_back(AUTO, "closed")
    assert memory.v5_accepted(AUTO) is True
    assert memory.v5_accepted(AUTO) is False
    assert ProtocolMemory(tmp_path, wall=Wall(1_800_000_000.0)).choose(AUTO).version == "5"


def test_explicit_versions_ignore_the_memory(tmp_path: Path) -> None:
    """`"5"` and `"3.1.1"` are what they say, whatever was remembered."""
    memory = ProtocolMemory(tmp_path, wall=Wall(1_800_000_000.0))
    memory.fell_back(AUTO, "closed")
    forced = BrokerConfig(url=AUTO.url, topic_prefix="p", protocol="5")
    assert (memory.choose(forced).version, memory.choose(forced).why) == ("5", "configured")
    old = BrokerConfig(url=OTHER.url, topic_prefix="p", protocol="3.1.1")
    assert memory.choose(old).version == "3.1.1"


def test_a_damaged_file_means_nothing_remembered(tmp_path: Path) -> None:
    """A torn or edited file is read as empty, not as an error."""
    (tmp_path / PROTOCOL_FILE).write_text('{"brokers": [1, 2')
    assert ProtocolMemory(tmp_path, wall=Wall(1.0)).choose(AUTO).version == "5"
    (tmp_path / PROTOCOL_FILE).write_text('{"brokers": {"mqtt://127.0.0.1:1999": {"since": "x"}}}')
    assert ProtocolMemory(tmp_path, wall=Wall(1.0)).choose(AUTO).version == "5"
