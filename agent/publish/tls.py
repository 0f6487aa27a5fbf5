"""The one TLS policy for every connection the agent makes to its broker: the daemon's link,
`buffer import` and `diag`'s TLS and login checks all take their context from here, so diag's
"verified as the agent verifies" is the same code, not a copy.

Verification is always on: there is deliberately no setting that turns it off.
"""

from __future__ import annotations

import ssl

from agent.config.schema import BrokerConfig


def tls_context(broker: BrokerConfig) -> ssl.SSLContext:
    """Server certificate and host name verified against `broker.ca_file` (else the system's CAs),
    TLS 1.2 at least, and the client certificate when one is configured. Raise ssl.SSLError or
    OSError when the local files cannot be used."""
    ca = str(broker.ca_file) if broker.ca_file else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if broker.cert_file is not None and broker.key_file is not None:
        context.load_cert_chain(str(broker.cert_file), str(broker.key_file))
    return context
