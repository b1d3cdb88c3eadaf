"""Throw-away PKI for one control plane: a CA, a serving certificate, an admin client certificate
(O=system:masters) and the service-account signing key pair, written into the control plane's work
directory. Made with `cryptography` (a dependency of the kubernetes client) so no openssl CLI is needed."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=2)  # a test run, with room for a laptop left running overnight


@dataclasses.dataclass(frozen=True)
class Pki:
    """PEM files. ``ca_key`` is kept so tests can sign more serving certificates (webhooks) with ``serving_pair``."""

    ca_cert: pathlib.Path
    ca_key: pathlib.Path
    serving_cert: pathlib.Path
    serving_key: pathlib.Path
    admin_cert: pathlib.Path
    admin_key: pathlib.Path
    sa_public: pathlib.Path
    sa_private: pathlib.Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: pathlib.Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _issue(
    *,
    subject: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def serving_pair(
    directory: pathlib.Path,
    *,
    ca_cert: pathlib.Path,
    ca_key: pathlib.Path,
    name: str,
    ips: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
) -> tuple[pathlib.Path, pathlib.Path]:
    """A serving certificate for 127.0.0.1/localhost (and ``ips``, ``dns_names``) signed by the given CA.

    Webhooks use it too; the node's API server and kubelet add the node's address."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signing_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signing_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(dns) for dns in ("localhost", *dns_names)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *ips)]
    cert = _issue(
        subject=_name(name),
        ca_key=signing_key,
        ca_name=ca.subject,
        key=key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def generate(directory: pathlib.Path, *, ips: tuple[str, ...] = (), dns_names: tuple[str, ...] = ()) -> Pki:
    """A fresh CA and everything signed by it; short-lived, since each control plane makes its own.

    ``ips`` and ``dns_names``: more names for the API server's certificate (the node's address)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("pilotfish-testenv-ca")
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, directory / "ca.key")
    serving_cert, serving_key = serving_pair(
        directory,
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        name="apiserver",
        ips=ips,
        dns_names=dns_names,
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        subject=_name("pilotfish-testenv-admin", "system:masters"),
        ca_key=ca_key,
        ca_name=ca_name,
        key=admin_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    (directory / "admin.crt").write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    _write_key(admin_key, directory / "admin.key")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(sa_key, directory / "sa.key")
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=serving_cert,
        serving_key=serving_key,
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_public=directory / "sa.pub",
        sa_private=directory / "sa.key",
    )
