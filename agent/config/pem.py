"""Whether a PEM key file asks for a passphrase, told from its first bytes.

Kept apart from `agent.publish.tls` so that reading the configuration does not import `ssl`:
`village-agent run` reads its configuration before the daemon's deferred imports are in place
(agent/lowmem.py).
"""

from __future__ import annotations

# Enough of a PEM file to see its first block's type and headers.
PEM_HEAD_BYTES = 4096


def is_encrypted_pem(head: bytes) -> bool:
    """Whether a PEM key (its first bytes) is protected by a passphrase: PKCS#8's ENCRYPTED PRIVATE
    KEY block, or the traditional `Proc-Type: 4,ENCRYPTED` header."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in head or b"Proc-Type: 4,ENCRYPTED" in head
