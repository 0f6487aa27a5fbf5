"""Test PKI: a throwaway CA that issues server and client certificates as PEM files.

Built with `cryptography` rather than the openssl CLI because tests need validity windows in the
past (expired) and in the future (not yet valid), which `openssl req`/`x509` on bookworm cannot set.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Backdated so that a broker or client whose clock runs slightly behind the test's still accepts
# a certificate issued a moment ago.
_CLOCK_SKEW = timedelta(hours=1)
_DEFAULT_LIFETIME = timedelta(days=30)
_CA_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPair:
    """A certificate and its private key, both PEM files."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class CertAuthority:
    """A CA whose certificate and key are on disk (for brokers and clients) and in memory (to sign)."""

    cert_file: Path
    key_file: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        directory: Path,
        name: str,
        *,
        hostnames: Sequence[str] = (),
        client: bool = False,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> CertPair:
        """Sign a leaf certificate with common name `name`, written as `<name>.crt`/`<name>.key`.

        `hostnames` become subjectAltName entries: IP addresses where they parse as one, DNS names
        otherwise. `client` selects the clientAuth extended key usage instead of serverAuth. The
        validity window defaults to [now - 1 h, now + 30 days]; pass datetimes in the past or the
        future to make an expired or not-yet-valid certificate.
        """
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _CLOCK_SKEW)
            .not_valid_after(not_after or now + _DEFAULT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            # Python 3.13's default VERIFY_X509_STRICT rejects leaf certificates without an AKI.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if hostnames:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(host) for host in hostnames]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        stem = _file_stem(name)
        directory.mkdir(parents=True, exist_ok=True)
        return CertPair(
            cert_file=_write_cert(directory / f"{stem}.crt", cert),
            key_file=_write_key(directory / f"{stem}.key", key),
        )


def make_ca(directory: Path, name: str = "Test CA") -> CertAuthority:
    """Create a self-signed CA, written as `ca.crt` and `ca.key` (mode 0600) in `directory`."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Starts long before any leaf a test may backdate, so only the leaf's window matters.
        .not_valid_before(now - _CA_LIFETIME)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    return CertAuthority(
        cert_file=_write_cert(directory / "ca.crt", cert),
        key_file=_write_key(directory / "ca.key", key),
        cert=cert,
        key=key,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        # The mode given to os.open only applies when the file is new.
        os.fchmod(file.fileno(), 0o600)
        file.write(pem)
    return path


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """A CA with one server certificate (127.0.0.1) and one client certificate."""

    ca: CertAuthority
    server: CertPair
    client: CertPair


def make_pki(directory: Path) -> Pki:
    """Create the usual test PKI in `directory`: what a TLS broker and its one client need."""
    ca = make_ca(directory)
    return Pki(
        ca=ca,
        server=ca.issue(directory, "server", hostnames=("127.0.0.1",)),
        client=ca.issue(directory, "client", client=True),
    )
