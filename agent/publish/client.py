"""The one place a paho-mqtt client is set up from the broker settings: protocol, session,
credentials, TLS and the cap on what the broker may send. The daemon's link and `diag`'s login check
both start from here."""

from __future__ import annotations

import errno

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config.load import read_password
from agent.config.schema import BrokerConfig
from agent.publish.protocol import Version
from agent.publish.tls import tls_context

# The largest packet the agent takes from its broker. It subscribes to nothing, so only
# acknowledgements and pings arrive: 1 MiB is far more than they need and far below the unit's
# MemoryMax=128M, which a broker announcing a 200 MB PUBLISH would otherwise push the agent past.
MAX_INCOMING_PACKET_BYTES = 1024 * 1024


class PacketTooLarge(OSError):
    """The broker announced a packet larger than the agent accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(errno.EMSGSIZE, f"the broker sent a {size}-byte packet (limit {limit})")
        self.size = size
        self.limit = limit


class GuardedClient(mqtt.Client):
    """A paho client that refuses an incoming packet above `max_packet_bytes` before reading it,
    and keeps the error that ended its last read or write (a TLS alert, a reset) for the log.

    paho 2 has no such limit: it reads a packet's whole announced length into memory. Its reader
    asks `_sock_recv` for the packet's remaining length in one call once the length is known, so
    that call is where the announced size is seen first; tests/unit/test_link_protocol.py proves it
    on a 200 MiB packet, so a paho that reads differently fails there, not in the field.
    """

    max_packet_bytes: int = MAX_INCOMING_PACKET_BYTES
    socket_error: OSError | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if bufsize > self.max_packet_bytes:
            self.socket_error = PacketTooLarge(bufsize, self.max_packet_bytes)
            raise self.socket_error
        try:
            return super()._sock_recv(bufsize)
        except BlockingIOError:
            raise
        except OSError as err:
            self.socket_error = err
            raise

    def _sock_send(self, buf: bytes | bytearray) -> int:
        try:
            return super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as err:
            self.socket_error = err
            raise


def paho_client(
    broker: BrokerConfig, client_id: str, version: Version | None = None
) -> GuardedClient:
    """A fresh paho client for one connection attempt, not yet connected, speaking `version`
    (default: the configured one, 5 under `auto`). Raise OSError when the password file cannot be
    read, ssl.SSLError when the TLS files cannot be used."""
    v5 = (version or ("3.1.1" if broker.protocol == "3.1.1" else "5")) == "5"
    client = GuardedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        # 3.1.1: no broker-side session; unacknowledged rows are resent from the buffer anyway.
        clean_session=None if v5 else True,
    )
    if broker.username is not None:
        client.username_pw_set(broker.username, read_password(broker))
    if broker.tls:
        client.tls_set_context(tls_context(broker))
    return client


def connect_properties(client: mqtt.Client) -> Properties | None:
    """MQTT 5 CONNECT properties: the Maximum Packet Size, so a conforming broker never sends more
    (a broker that does is cut off by `GuardedClient`). None under 3.1.1, which has no properties."""
    if client.protocol != mqtt.MQTTv5:
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.MaximumPacketSize = MAX_INCOMING_PACKET_BYTES
    return properties
