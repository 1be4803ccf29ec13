"""Signed SecAgg+ round keys (issue #36): each client's long-term Ed25519 identity and the roster of them all.

Without signatures a malicious server can relay key pairs of its own in a client's neighbours' places and
decrypt the client's shares of both its secrets (docs/privacy.md). Bonawitz et al. (CCS 2017, the active
adversary variant) close this with a PKI, built here as:

- **Identity**: one Ed25519 key pair per client, made once (`create_identities`, `fedlanhar secagg-keys`). Its
  name is the client's name in the roster: its partition id in simulation ("0", "1", ...), any name in
  deployment. A key file holds the name and the private key.
- **Roster**: every client's name and public identity key (roster.json). It reaches each client OUT OF BAND:
  a SuperNode's own `--node-config` (`secagg-roster`, `secagg-identity-key`) or, in simulation, the client's
  own environment (client/secagg.py); never the run config, never a message, both of which the server writes.
- **Signed round keys**: at setup a client signs its two fresh public keys together with the run id, the
  round and the node id the server addresses it by (`signed_keys_message`); the server relays the name and
  signature with the keys. At share-keys every client checks every relayed entry against its roster
  (`check_signed_keys`): the server can no longer put its own keys in a neighbour's place, nor replay a
  neighbour's keys from another round, run or node id.

The server's node ids are Flower's, unknown in advance; a signature binds a roster name to the node id of this
run, so the server cannot move one client's signed keys to another node. What a malicious server can still
do (drop clients, show clients different views, Sybils if it writes the roster) is in docs/privacy.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.federation.secagg import SecAggError, SecAggRefused

ROSTER_FILE = "roster.json"
ROSTER_FORMAT = "fedlanhar-secagg-roster-v1"
KEY_FORMAT = "fedlanhar-secagg-identity-v1"
# A fixed prefix separates these signatures from anything else the identity key might ever sign.
SIGNATURE_DOMAIN = b"fedlanhar secagg+ round keys v1"


class IdentityError(SecAggError):
    """A roster or identity key file that cannot be used (missing, malformed, or not matching each other)."""


def key_file_name(name: str) -> str:
    """The identity key file of the client named `name` (in simulation: its partition id)."""
    return f"client-{name}.key"


@dataclass(frozen=True)
class Identity:
    """A client's own signing key and name, and the roster it checks its neighbours against."""

    name: str
    private_key: Ed25519PrivateKey
    roster: dict[str, bytes]  # name -> raw 32-byte Ed25519 public key


# --------------------------------------------------------------------------------------- files: make, load
def create_identities(out: Path, names: list[str], force: bool = False) -> Path:
    """Write a fresh key pair per name (key files, mode 0600) and the roster of their public keys; the roster.

    Existing files are kept unless `force`: a new roster would lock out every client holding an old key.
    """
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"client names must be distinct and non-empty, got {names}")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / ROSTER_FILE, *(out / key_file_name(name) for name in names)]
    existing = [str(path) for path in paths if path.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} exist: pass force to replace them (and the roster)")
    roster = {}
    for name in names:
        private_key = Ed25519PrivateKey.generate()
        roster[name] = private_key.public_key().public_bytes_raw().hex()
        key = {
            "format": KEY_FORMAT,
            "name": name,
            "ed25519-private-key": private_key.private_bytes_raw().hex(),
        }
        path = out / key_file_name(name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(key, file)
    roster_path = out / ROSTER_FILE
    roster_path.write_text(json.dumps({"format": ROSTER_FORMAT, "clients": roster}, indent=1))
    return roster_path


def load_roster(path: Path) -> dict[str, bytes]:
    """roster.json -> name -> raw Ed25519 public key."""
    values = _read_json(path, ROSTER_FORMAT)
    clients = values.get("clients")
    if not isinstance(clients, dict) or not clients:
        raise IdentityError(f"{path}: 'clients' must map each client's name to its public key")
    try:
        roster = {str(name): bytes.fromhex(key) for name, key in clients.items()}
    except (TypeError, ValueError) as error:
        raise IdentityError(f"{path}: a public key is not hex: {error}") from error
    if any(len(key) != 32 for key in roster.values()):
        raise IdentityError(f"{path}: every Ed25519 public key is 32 bytes")
    if len(set(roster.values())) != len(roster):
        raise IdentityError(f"{path}: two clients share one public key")
    return roster


def load_identity(key_path: Path, roster_path: Path) -> Identity:
    """A client's identity: its key file, checked against the roster (its name listed with its public key)."""
    values = _read_json(key_path, KEY_FORMAT)
    roster = load_roster(roster_path)
    name = str(values.get("name", ""))
    try:
        private_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(values["ed25519-private-key"]))
    except (KeyError, TypeError, ValueError) as error:
        raise IdentityError(f"{key_path}: no valid 'ed25519-private-key' ({error})") from error
    if roster.get(name) != private_key.public_key().public_bytes_raw():
        raise IdentityError(f"{key_path}: client {name!r} is not in {roster_path} with this key's public key")
    return Identity(name=name, private_key=private_key, roster=roster)


def _read_json(path: Path, expected_format: str) -> dict:
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise IdentityError(f"cannot read {path}: {error}") from error
    if not isinstance(values, dict) or values.get("format") != expected_format:
        raise IdentityError(f"{path}: not a {expected_format} file")
    return values


# ----------------------------------------------------------------------------------- signing and checking
def signed_keys_message(
    run_id: int, server_round: int, node_id: int, name: str, pk1: bytes, pk2: bytes
) -> bytes:
    """What a client signs: its two round keys bound to the run, the round, its node id and its name.

    Every part is length-prefixed, so no two different tuples give the same bytes.
    """
    parts = [
        SIGNATURE_DOMAIN,
        int(run_id).to_bytes(8, "big"),
        int(server_round).to_bytes(8, "big"),
        int(node_id).to_bytes(8, "big"),  # Flower's node ids are unsigned 64-bit
        name.encode("utf-8"),
        pk1,
        pk2,
    ]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def sign_keys(
    identity: Identity, run_id: int, server_round: int, node_id: int, pk1: bytes, pk2: bytes
) -> bytes:
    """The Ed25519 signature of `signed_keys_message` under the client's identity key."""
    return identity.private_key.sign(
        signed_keys_message(run_id, server_round, node_id, identity.name, pk1, pk2)
    )


def check_signed_keys(
    identity: Identity, node_id: int, run_id: int, server_round: int, entries: dict[int, tuple[bytes, ...]]
) -> None:
    """Share-keys with a roster: refuse (SecAggRefused) any relayed entry that is not a roster client's own.

    `entries`: node -> (pk1, pk2, name, signature) as the server relayed them, this node's own included. Each
    name must be in the roster and appear once, this node's entry must carry its own name, and each signature
    must verify under the roster's key for that name over this run, this round (the one this node signed) and
    that node id: a swapped or altered key, a replayed one (another round, run or node) and a forged
    signature all fail it.
    """
    seen: dict[str, int] = {}
    for node, entry in entries.items():
        if len(entry) != 4 or not all(isinstance(part, bytes) for part in entry):
            raise SecAggRefused(
                node_id,
                f"keys of node {node}",
                f"{len(entry)} values",
                "pk1, pk2, name, signature (bytes)",
                "unsigned or malformed",
            )
        pk1, pk2, name_bytes, signature = entry
        name = name_bytes.decode("utf-8", errors="replace")
        if name not in identity.roster:
            raise SecAggRefused(
                node_id,
                f"identity of node {node}",
                name,
                "a client of this node's roster",
                "unknown identity",
            )
        if name in seen:
            raise SecAggRefused(
                node_id, "identity", name, "each identity once", f"claimed by nodes {seen[name]} and {node}"
            )
        seen[name] = node
        if node == node_id and name != identity.name:
            raise SecAggRefused(node_id, "own identity", name, repr(identity.name), "not this node's")
        message = signed_keys_message(run_id, server_round, node, name, pk1, pk2)
        try:
            Ed25519PublicKey.from_public_bytes(identity.roster[name]).verify(signature, message)
        except InvalidSignature as error:
            raise SecAggRefused(
                node_id,
                f"signature of node {node}'s keys",
                signature.hex()[:16] + "...",
                f"{name!r}'s signature over its round-{server_round} keys for node {node} in run {run_id}",
                "altered, swapped or replayed keys",
            ) from error
