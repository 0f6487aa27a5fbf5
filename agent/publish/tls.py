"""The one TLS policy for every connection the agent makes to its broker: the daemon's link,
`buffer import`, `diag`'s TLS and login checks and the provincial collector all take their context
from here, so diag's
"verified as the agent verifies" is the same code, not a copy.

Verification is always on: there is deliberately no setting that turns it off.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.config.schema import BrokerConfig


class EncryptedKey(OSError):
    """The client key needs a passphrase: a service has no one to type it."""


def _no_passphrase() -> str:
    # Without a password callback OpenSSL asks on the terminal, and a daemon would hang there.
    raise EncryptedKey("the client key is encrypted; a service cannot type its passphrase")


def tls_context(broker: BrokerConfig) -> ssl.SSLContext:
    """The agent's context for its broker (see `verified_context`)."""
    return verified_context(broker.ca_file, broker.cert_file, broker.key_file)


def verified_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """Server certificate and host name verified against `ca_file` (else the system's CAs), TLS 1.2
    at least, and the client certificate when one is given. The collector uses it too. Raise
    ssl.SSLError or OSError when the local files cannot be used."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file), password=_no_passphrase)
    return context
