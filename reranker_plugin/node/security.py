"""Certificates, users and roles for the secured local node.

The security plugin reads PEM certificates and its users/roles from files under
the node's ``config/`` and copies them into its security index on first start.
Everything here is generated once per node (a private CA, a node certificate
for HTTPS and transport, one random password per user) and kept in ``<node root>/security/``, so restarts and re-assemblies reuse
the same CA and passwords the security index already holds.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reranker_core.files import atomic_write, fsync_tree, sync_renamed

from .assets import asset_path

NODE_DN = "CN=node,OU=reranker,O=reranker-local"
ADMIN_USER = "admin"
CERT_FILES = ("root-ca.pem", "node.pem", "node-key.pem")


@dataclass(frozen=True)
class Credentials:
    """Where a client finds the CA bundle, and each generated user's password."""

    ca_certs: Path
    passwords: dict[str, str]

    @classmethod
    def load(cls, directory: Path) -> Credentials | None:
        path = directory / "credentials.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(directory / "root-ca.pem", dict(data["passwords"]))


def ensure_material(directory: Path, users: dict[str, list[str]]) -> Credentials:
    """Generate the CA, certificates and passwords once; later calls return what is there."""
    found = Credentials.load(directory)
    if found is not None:
        return found
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        ca_key, ca_cert = _certificate("CN=reranker-local-ca", None, None, ca=True)
        node_key, node_cert = _certificate(NODE_DN, ca_key, ca_cert, server=True)
        _write_pem(staging, "root-ca.pem", ca_cert, None)
        _write_pem(staging, "node.pem", node_cert, None)
        _write_pem(staging, "node-key.pem", None, node_key)
        passwords = {user: secrets.token_urlsafe(18) for user in users}
        _write_security_config(staging, users, passwords)
        credentials = staging / "credentials.json"
        credentials.write_text(json.dumps({"passwords": passwords}, indent=2) + "\n", encoding="utf-8")
        credentials.chmod(0o600)
        fsync_tree(staging)
        staging.replace(directory)
        sync_renamed(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Credentials.load(directory)  # type: ignore[return-value]


def install(directory: Path, config_dir: Path) -> None:
    """Copy certificates and the security plugin's user/role files into the node's ``config/``."""
    for name in CERT_FILES:
        shutil.copyfile(directory / name, config_dir / name)
    security_dir = config_dir / "opensearch-security"
    security_dir.mkdir(exist_ok=True)
    for name in ("internal_users.yml", "roles_mapping.yml"):
        shutil.copyfile(directory / name, security_dir / name)
    shutil.copyfile(asset_path("security/roles.yml"), security_dir / "roles.yml")


def role_requests(users: dict[str, list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) PUTs for the security REST API: every role in roles.yml and who is mapped to it.

    Sent on each start, so edits to roles.yml or the recipe's users reach a node
    whose security index was initialised earlier.
    """
    roles = yaml.safe_load(asset_path("security/roles.yml").read_text(encoding="utf-8"))
    requests = [(f"/_plugins/_security/api/roles/{name}", {k: v for k, v in body.items() if k != "reserved"})
                for name, body in roles.items() if name != "_meta"]
    mapped: dict[str, list[str]] = {}
    for user, user_roles in users.items():
        for role in user_roles:
            mapped.setdefault(role, []).append(user)
    requests += [(f"/_plugins/_security/api/rolesmapping/{role}", {"users": names}) for role, names in mapped.items()]
    return requests


def node_settings() -> dict[str, Any]:
    """opensearch.yml entries: TLS on HTTP and transport, and which certificate is a node's."""
    tls: dict[str, Any] = {}
    for layer in ("transport", "http"):
        tls[f"plugins.security.ssl.{layer}.pemcert_filepath"] = "node.pem"
        tls[f"plugins.security.ssl.{layer}.pemkey_filepath"] = "node-key.pem"
        tls[f"plugins.security.ssl.{layer}.pemtrustedcas_filepath"] = "root-ca.pem"
    return {
        **tls,
        "plugins.security.ssl.http.enabled": True,
        "plugins.security.ssl.transport.enforce_hostname_verification": False,
        "plugins.security.allow_default_init_securityindex": True,
        "plugins.security.nodes_dn": [NODE_DN],
        "plugins.security.restapi.roles_enabled": ["all_access"],
    }


# ---------------------------------------------------------------- helpers
def _write_security_config(directory: Path, users: dict[str, list[str]], passwords: dict[str, str]) -> None:
    """internal_users.yml (bcrypt hashes) and roles_mapping.yml from the recipe's user -> roles map."""
    import bcrypt

    internal: dict[str, Any] = {"_meta": {"type": "internalusers", "config_version": 2}}
    for user in users:
        digest = bcrypt.hashpw(passwords[user].encode(), bcrypt.gensalt(rounds=12)).decode()
        internal[user] = {"hash": digest, "reserved": False, "description": "generated by reranker cluster up"}
    mapping: dict[str, Any] = {"_meta": {"type": "rolesmapping", "config_version": 2}}
    for user, roles in users.items():
        for role in roles:
            mapping.setdefault(role, {"reserved": False, "users": []})["users"].append(user)
    for name, body in (("internal_users.yml", internal), ("roles_mapping.yml", mapping)):
        text = yaml.safe_dump(body, sort_keys=False)
        atomic_write(directory / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))


def _name(dn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
    # RFC 4514 strings list the most specific part first; x509 names are built the other way round.
    parts = [part.split("=", 1) for part in dn.split(",")]
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in reversed(parts)])


def _certificate(dn: str, issuer_key, issuer_cert, ca: bool = False, server: bool = False):
    """An RSA key and a certificate for ``dn``, self-signed when no issuer is given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    subject = _name(dn)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=825))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def _write_pem(directory: Path, name: str, cert, key) -> None:
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        data = cert.public_bytes(serialization.Encoding.PEM)
    else:  # the security plugin wants unencrypted PKCS#8
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    (directory / name).write_bytes(data)
