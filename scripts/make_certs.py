"""Create the keys and certificates of a Flower deployment with TLS and SuperNode authentication.

    python scripts/make_certs.py --out certs --supernodes 2 [--host link.example.org ...]

writes into --out:
  ca.crt, ca.key            a private certificate authority (give ca.crt to every SuperNode and `flwr` user)
  server.crt, server.key    the SuperLink's certificate, signed by the CA, valid for 127.0.0.1, localhost and
                            every --host (the name or IP the SuperNodes dial must be among them)
  supernode-<i>, .pub       one EC P-384 key pair per SuperNode in OpenSSH format: the formats Flower 1.42
                            reads (`flower-supernode --auth-supernode-private-key`, `flwr supernode register`)

Private keys are written with mode 0600. Existing files are not overwritten unless --force: re-creating the CA
would invalidate every certificate already handed out.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write(path: Path, data: bytes, private: bool, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["127.0.0.1", "localhost", *hosts]):  # ordered, without duplicates
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_ca(days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FedLanHAR deployment CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew between machines
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str], days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The SuperLink's TLS certificate; clients check the address they dial against its SANs."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FedLanHAR SuperLink")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_subject_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def make_supernode_key() -> tuple[bytes, bytes]:
    """(private, public) OpenSSH encodings of a fresh P-384 key: Flower accepts NIST EC curves only."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b"\n"


def write_deployment_keys(
    out: Path, supernodes: int, hosts: list[str], days: int = 365, force: bool = False
) -> None:
    """Write the CA, the SuperLink certificate and `supernodes` SuperNode key pairs into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca(days)
    server_key, server_cert = make_server_cert(ca_key, ca_cert, hosts, days)
    pem = serialization.Encoding.PEM
    _write(out / "ca.key", _pem_key(ca_key), private=True, force=force)
    _write(out / "ca.crt", ca_cert.public_bytes(pem), private=False, force=force)
    _write(out / "server.key", _pem_key(server_key), private=True, force=force)
    _write(out / "server.crt", server_cert.public_bytes(pem), private=False, force=force)
    for index in range(supernodes):
        private, public = make_supernode_key()
        _write(out / f"supernode-{index}", private, private=True, force=force)
        _write(out / f"supernode-{index}.pub", public, private=False, force=force)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--supernodes", type=int, default=2, help="number of SuperNode key pairs")
    parser.add_argument(
        "--host", action="append", default=[], help="extra DNS name or IP of the SuperLink (repeatable)"
    )
    parser.add_argument("--days", type=int, default=365, help="validity of the certificates")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    write_deployment_keys(args.out, args.supernodes, args.host, args.days, args.force)
    print(f"wrote CA, SuperLink certificate and {args.supernodes} SuperNode key pairs to {args.out}")


if __name__ == "__main__":
    main()
