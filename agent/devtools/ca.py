"""A development certificate authority for the broker's TLS listener.

Used by `fpagent demo`, the link tests and `fpagent bench link`: a CA, a
broker certificate for 127.0.0.1/localhost, and one client certificate per
appliance (CN = device id) plus one for the central responder (CN =
"central"). `scripts/dev-ca` makes the same layout with openssl for a
technician. Development only: a real deployment uses the agency's own PKI.

Layout under `directory`:
    ca.crt ca.key broker.crt broker.key <cn>.crt <cn>.key
Private keys are written 0600. Calling it again reuses what exists.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825


def _write_private(path: pathlib.Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _load_or_make_key(path: pathlib.Path):
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(path, key)
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fpagent development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(directory: pathlib.Path):
    key = _load_or_make_key(directory / "ca.key")
    cert_path = directory / "ca.crt"
    if cert_path.exists():
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name("fpagent development CA"))
            .issuer_name(_name("fpagent development CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _leaf(directory: pathlib.Path, name: str, cn: str, ca_key, ca_cert, *, server: bool) -> None:
    cert_path = directory / f"{name}.crt"
    key = _load_or_make_key(directory / f"{name}.key")
    if cert_path.exists():
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_dev_pki(directory, clients=("booking-01", "central")) -> pathlib.Path:
    """Create (or complete) the development PKI in `directory`; returns it."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_key, ca_cert = _ca(directory)
    _leaf(directory, "broker", "localhost", ca_key, ca_cert, server=True)
    for cn in clients:
        _leaf(directory, cn, cn, ca_key, ca_cert, server=False)
    return directory


def make_untrusted_client(directory, cn: str) -> pathlib.Path:
    """A client certificate from a different, unknown CA (security tests)."""
    other = pathlib.Path(directory) / "untrusted-ca"
    other.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca(other)
    _leaf(other, cn, cn, ca_key, ca_cert, server=False)
    return other
