"""A development certificate authority for the broker's TLS listener.

Used by `fpagent demo`, the link tests and `fpagent bench link`: a CA, a
broker certificate for 127.0.0.1/localhost, one client certificate per
appliance (CN = "<ORI>/<device id>": device ids are only unique within an
agency, so the identity the broker trusts names both) and one per central
worker (CN = "central/worker-<n>": the broker binds each client id to its
certificate, so two workers need two identities), and a certificate
revocation list the broker checks. `scripts/dev-ca` makes the same layout
for a technician, `scripts/revoke-device` revokes a certificate.
Development only: a real deployment uses the agency's own PKI.

Layout under `directory` (a CN with a "/" is a sub-folder):
    ca.crt ca.key ca.crl broker.crt broker.key <cn>.crt <cn>.key
Private keys are written 0600. Calling it again reuses what exists.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import pathlib
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825
CRL_VALID_DAYS = 825  # a development CRL; an agency's CA publishes a fresh one before nextUpdate
CENTRAL_WORKERS = ("central/worker-1", "central/worker-2", "central/worker-3", "central/worker-4")
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")


def device_cn(ori: str, device_id: str) -> str:
    """The certificate CN (= broker user name and client id) of an appliance."""
    return f"{ori}/{device_id}"


def central_cn(worker: int = 1) -> str:
    """The certificate CN of central worker `worker` (1-based)."""
    return f"central/worker-{worker}"


def cert_path(directory, cn: str) -> pathlib.Path:
    """Where the certificate of `cn` lives ("XX0000000/booking-01" -> XX0000000/booking-01.crt)."""
    if not _CN.match(cn):
        raise ValueError(f"certificate name {cn!r}: one or two '/'-separated parts of "
                         f"letters, digits, '.', '_' and '-'")
    return pathlib.Path(directory) / f"{cn}.crt"


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
    os.chmod(cert_path, 0o644)
    return key, cert


def _leaf(directory: pathlib.Path, name: str, cn: str, ca_key, ca_cert, *, server: bool) -> None:
    cert_file = cert_path(directory, name)
    cert_file.parent.mkdir(mode=0o700, exist_ok=True)
    key = _load_or_make_key(cert_file.with_suffix(".key"))
    if cert_file.exists():
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
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(cert_file, 0o644)


def make_dev_pki(directory, clients=(device_cn("XX0000000", "booking-01"), *CENTRAL_WORKERS)
                 ) -> pathlib.Path:
    """Create (or complete) the development PKI in `directory`; returns it.

    `clients`: certificate CNs; an appliance's is device_cn(ori, device_id),
    a central worker's central_cn(n)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_key, ca_cert = _ca(directory)
    _leaf(directory, "broker", "localhost", ca_key, ca_cert, server=True)
    for cn in clients:
        _leaf(directory, cn, cn, ca_key, ca_cert, server=False)
    if not (directory / "ca.crl").exists():
        write_crl(directory, ca_key, ca_cert, [])
    return directory


def write_crl(directory, ca_key, ca_cert, revoked) -> pathlib.Path:
    """(Re)write ca.crl: `revoked` is a list of x509.RevokedCertificate."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(now - datetime.timedelta(minutes=5))
               .next_update(now + datetime.timedelta(days=CRL_VALID_DAYS)))
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    path = pathlib.Path(directory) / "ca.crl"
    tmp = path.with_suffix(".crl.tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def revoke(directory, cn: str) -> int:
    """Add the certificate of `cn` to the CA's revocation list; returns its serial number.

    The broker reads the list when it starts: restart (or reload) it afterwards."""
    directory = pathlib.Path(directory)
    path = cert_path(directory, cn)
    if not path.exists():
        raise FileNotFoundError(f"no certificate {path}")
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ca_key, ca_cert = _ca(directory)
    crl_file = directory / "ca.crl"
    revoked = list(x509.load_pem_x509_crl(crl_file.read_bytes())) if crl_file.exists() else []
    if all(r.serial_number != cert.serial_number for r in revoked):
        revoked.append(x509.RevokedCertificateBuilder()
                       .serial_number(cert.serial_number)
                       .revocation_date(datetime.datetime.now(datetime.timezone.utc))
                       .build())
    write_crl(directory, ca_key, ca_cert, revoked)
    return cert.serial_number


def make_untrusted_client(directory, cn: str) -> pathlib.Path:
    """A client certificate from a different, unknown CA (security tests)."""
    other = pathlib.Path(directory) / "untrusted-ca"
    other.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca(other)
    _leaf(other, cn, cn, ca_key, ca_cert, server=False)
    return other


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpagent.devtools.ca",
                                     description="development CA: certificates and revocation list")
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="make (or complete) the PKI in DIR with these client CNs")
    m.add_argument("dir")
    m.add_argument("cn", nargs="*", help='e.g. XX0000000/booking-01 or central/worker-1')
    r = sub.add_parser("revoke", help="revoke the certificate of CN and rewrite DIR/ca.crl")
    r.add_argument("dir")
    r.add_argument("cn")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "make":
            names = ["ca", "broker", *args.cn]
            before = {n for n in names if cert_path(args.dir, n).exists()}
            make_dev_pki(args.dir, clients=args.cn)
            for name in names:
                if name not in before:
                    print(f"dev-ca: made {cert_path(args.dir, name)}")
        else:
            serial = revoke(args.dir, args.cn)
            print(f"revoked {args.cn} (serial {serial:x}); {pathlib.Path(args.dir) / 'ca.crl'} "
                  f"rewritten: restart the broker (systemctl restart mosquitto) to apply it")
    except (ValueError, FileNotFoundError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
