"""The MQTT topics of the contract, `{prefix}/{site}/{kind}`: the only place a topic is spelled.

telemetry  batches of readings (QoS 1)
event      alarms sent outside the buffer, when it cannot take a reading (QoS 1)
status     retained birth `online` / last will `offline`
import     retained marker of a `buffer import` in progress (`importing` / `stopped`)
ack        retained, from the collector: what it stored of the site (agent/contract/ack.py)
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["telemetry", "event", "status", "import", "ack"]
KINDS: tuple[Kind, ...] = ("telemetry", "event", "status", "import", "ack")


def topic(prefix: str, site: str, kind: Kind) -> str:
    return f"{prefix}/{site}/{kind}"
