"""The one place a paho-mqtt client is set up from the broker settings: protocol, session,
credentials and TLS. The daemon's link and `diag`'s login check both start from here."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config.load import read_password
from agent.config.schema import BrokerConfig
from agent.publish.tls import tls_context


def paho_client(broker: BrokerConfig, client_id: str) -> mqtt.Client:
    """A fresh paho client for one connection attempt, not yet connected. Raise OSError when the
    password file cannot be read, ssl.SSLError when the TLS files cannot be used."""
    v5 = broker.protocol == "5"
    client = mqtt.Client(
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
