"""SecAgg+ for the training rounds, on the Message API: message types, record keys and the protocol's maths.

Secure aggregation (Bonawitz et al. 2017, SecAgg+ of Bell et al. 2020, as Flower's legacy
`SecAggPlusWorkflow` / `secaggplus_mod` implement it): the server learns the SUM of the sampled clients'
weighted updates and nothing about any single one. Per round, four stages (the server always asks):

1. setup       `query.secagg_setup` -> the round's parameters; reply: two public keys (pk1 for the pairwise
               masks, pk2 for encrypting key shares to neighbours).
2. share keys  `query.secagg_share_keys` -> the public keys of the client's neighbours (a ring of
               `num_shares` clients, itself included); reply: per neighbour, Shamir shares of the client's
               mask seed and of its private key 1, encrypted for that neighbour (the server only routes them).
3. collect     `train` -> the usual train message, its ConfigRecord also carrying the ciphertexts addressed to
               the client; reply: its quantised weighted update and weight, masked with its own seed's mask
               plus one pairwise mask per live neighbour (they cancel in the sum), as one uint32 vector.
4. unmask      `query.secagg_unmask` -> which neighbours survived and which dropped after stage 2; reply: the
               mask-seed shares of survivors and the private-key shares of the dropped (never both for one
               node). The server rebuilds the survivors' own masks and the dropped clients' pairwise masks.

Weighting (as Flower's workflow): a client multiplies its update by r = weight / max_weight (max_weight is the
largest weight sampled this round, announced in stage 1), quantised as q = round(r * Q); q rides in the masked
vector as element 0. The server divides the unmasked sum by sum(q) / Q: a num_examples-weighted average up to
quantisation error (the weight key is "num-examples", or the uniform weight 1 under central DP).

What is masked is the UPDATE (trained - global), clipped to +-clipping_range per coordinate: updates are
small, so a narrow range keeps the quantisation step (2 * clipping_range / Q) far below their size.

Nothing rides beside the masked vector: the train loss is its LAST coordinate (loss / loss_bound *
clipping_range, weighted like the update), so the server learns only the weighted mean loss (`split_loss`).

Masks are ChaCha20 keystreams under 256-bit keys (`expand_mask`): the client's random mask seed, or the
pair's ECDH-derived key. Flower's `pseudo_rand_gen` is not used: it folds its seed to 32 bits, so about
2**32 tries would rebuild a mask. Every survivor keeps at least 3 live neighbours (`check_neighbourhood`).

Flower's primitives do the rest (ECDH, shared-key derivation, authenticated encryption, Shamir sharing,
quantisation); this module sends no messages, so tests can simulate N clients and the server.
"""

from __future__ import annotations

import base64
import os
import random
from dataclasses import dataclass, field, fields

import numpy as np
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import decrypt, encrypt, generate_shared_key
from flwr.common.secure_aggregation.quantization import quantize
from flwr.common.secure_aggregation.secaggplus_utils import (
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

from common.federation.protocol import UNIFORM_WEIGHT

SETUP = "query.secagg_setup"
SHARE_KEYS = "query.secagg_share_keys"
UNMASK = "query.secagg_unmask"
# The collect stage is the round's ordinary `train` message; these keys ride in its ConfigRecord.
CIPHERTEXTS = "secagg-ciphertexts"  # list[bytes], one per neighbour that shared keys
SOURCES = "secagg-sources"  # list[str]: node id of each ciphertext's sender (str: ids are unsigned 64-bit)

PARAMS = "secagg-params"  # ConfigRecord of SecAggParams (stage 1)
# ConfigRecord: setup reply {pk1, pk2} (+ {identity, signature} from a client with a roster); share-keys
# request {str(node): [pk1, pk2]} (+ [.., identity, signature] where the setup reply was signed)
KEYS = "secagg-keys"
IDENTITY = "identity"  # bytes: the client's name in its roster (common/federation/secagg_identity.py)
SIGNATURE = "signature"  # bytes: its Ed25519 signature over its round keys
# ConfigRecord: share-keys reply {destinations, ciphertexts}; unmask reply {owners, shares}
SHARES = "secagg-shares"
MASKED = "secagg-masked"  # ArrayRecord {"vector": uint32 [1 + parameters]} (collect reply)
NEIGHBOURS = "secagg-neighbours"  # ConfigRecord {"active": [str], "dropped": [str]} (unmask request)
NUM_EXAMPLES = "num-examples"  # the train-reply metric that weighs a client without central DP (weight_key)
STATE = "secagg-state"  # the client's protocol state, in context.state (never sent)
# The four stages by name, as run config `secagg-drop` names the stage a client stops answering at.
STAGES = ("setup", "share-keys", "collect", "unmask")

MODULUS = 2**32  # arithmetic of the masked vectors (a power of two: the mod is a mask)
# |train loss| above this is clipped before masking. It scales the loss into +-clipping_range: with the
# default quantisation (2**22 levels) a client's loss is carried to 2 * 256 / 2**22 = 1.2e-4.
LOSS_BOUND = 256.0

SEED_BYTES = 32  # mask seeds and pairwise mask keys: 256 bits, ChaCha20's key size
SELF_MASK = "self-mask"  # expand_mask's purposes
PAIRWISE_MASK = "pairwise-mask"
# ChaCha20's 16-byte nonce as `cryptography` takes it: a 4-byte little-endian block counter (0), then 12 bytes
# that name the purpose. Reusing a (key, nonce) pair is fatal when it encrypts two different messages (the
# XOR of the ciphertexts is the XOR of the plaintexts). Here nothing is encrypted: the keystream IS the mask,
# and each key serves one purpose in one round only (a fresh os.urandom mask seed per round; a pairwise key
# from key pairs made fresh per round), so a fixed nonce per purpose never serves one key twice. The two
# labels separate the domains: even a key that served both purposes would give unrelated masks.
_MASK_NONCES = {
    SELF_MASK: bytes(4) + b"self-mask".ljust(12, b"\0"),
    PAIRWISE_MASK: bytes(4) + b"pair-mask".ljust(12, b"\0"),
}
# Once the server has removed a survivor's own mask, only the pairwise masks with its live neighbours hide its
# update: to isolate it, the server must collude with every one of them (or break every pairwise key).
MIN_LIVE_NEIGHBOURS = 3


class SecAggError(RuntimeError):
    """A secure-aggregation round cannot complete (too few survivors, inconsistent messages)."""


@dataclass(frozen=True)
class SecAggParams:
    """One round's protocol parameters, sent to every sampled client in stage 1."""

    num_shares: int  # neighbourhood size, the client itself included
    threshold: int  # shares needed to rebuild a secret
    clipping_range: float
    quantization_range: int
    max_weight: float
    weight_key: str  # the train-reply metric that weighs the client ("num-examples" or "uniform-weight")
    modulus: int = MODULUS
    loss_bound: float = LOSS_BOUND  # the masked loss coordinate's range, see LOSS_BOUND

    def to_config(self) -> dict[str, object]:
        """Kebab-case field name -> value, cast to the field's declared type (ConfigRecords are typed)."""
        return {f.name.replace("_", "-"): _CASTS[f.type](getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_config(cls, values: dict) -> SecAggParams:
        return cls(**{f.name: _CASTS[f.type](values[f.name.replace("_", "-")]) for f in fields(cls)})


_CASTS = {"int": int, "float": float, "str": str}  # SecAggParams' field annotations (strings: __future__)


# ------------------------------------------------------------------------------------- masks, neighbourhoods
def expand_mask(seed: bytes, purpose: str, shape: tuple[int, ...], modulus: int = MODULUS) -> np.ndarray:
    """The mask of `shape` for `purpose` from a 256-bit seed: ChaCha20's keystream, read as uint32 words.

    The whole seed is the ChaCha20 key, so a mask is as hard to guess as its seed (2**256 tries), and the
    words are uniform on 0..2**32-1; `modulus` must be a power of two up to 2**32, which takes them mod it
    without bias. One function for the client's masking and the server's unmasking. Returns int64 values.
    """
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a mask seed must be {SEED_BYTES} bytes (256 bits), got {len(seed)}")
    if purpose not in _MASK_NONCES:
        raise ValueError(f"mask purpose must be one of {sorted(_MASK_NONCES)}, got {purpose!r}")
    if not 2 <= modulus <= 2**32 or modulus & (modulus - 1):
        raise ValueError(f"the modulus must be a power of two within 2..2**32, got {modulus}")
    count = int(np.prod(shape, dtype=np.int64))
    keystream = Cipher(algorithms.ChaCha20(seed, _MASK_NONCES[purpose]), mode=None).encryptor()
    words = np.frombuffer(keystream.update(bytes(4 * count)), dtype="<u4")
    return (words.astype(np.int64) % modulus).reshape(shape)


def check_neighbourhood(num_shares: int, threshold: int, error: type[ValueError] = ValueError) -> None:
    """Refuse SecAgg+ settings that leave a survivor's update hidden by too few masks, or tolerate no dropout.

    A round goes on while every survivor's neighbourhood keeps `threshold` live nodes, itself included: a
    survivor may then have threshold - 1 live neighbours, and at least MIN_LIVE_NEIGHBOURS are required.
    threshold == num_shares would need every neighbour to survive. `error`: the exception class to raise
    (the run config passes its ConfigError, a ValueError).
    """
    allowed = (
        f"allowed: {MIN_LIVE_NEIGHBOURS + 1} <= secagg-reconstruction-threshold < secagg-num-shares "
        f"(so secagg-num-shares >= {MIN_LIVE_NEIGHBOURS + 2})"
    )
    if threshold - 1 < MIN_LIVE_NEIGHBOURS:
        raise error(
            f"key 'secagg-reconstruction-threshold' {threshold} (with secagg-num-shares {num_shares}) lets a "
            f"survivor's neighbourhood shrink to {threshold} live nodes, itself included: "
            f"{threshold - 1} live neighbours, fewer than {MIN_LIVE_NEIGHBOURS} whose pairwise masks hide "
            f"its update; {allowed}"
        )
    if threshold >= num_shares:
        raise error(
            f"key 'secagg-reconstruction-threshold' {threshold} with secagg-num-shares {num_shares} "
            f"tolerates no dropout (every neighbour's share is needed); {allowed}"
        )


# ---------------------------------------------------------------------------------- what a client checks
# A server deviating from what it announced (a smaller neighbourhood, a lower threshold, another grid) could
# recover one client's update. Each client checks what it can from its own run config and the protocol's
# floors; docs/privacy.md says what these checks leave open.
class SecAggRefused(SecAggError):
    """A client refusing what the server sent: the parameter, the value received and the value expected."""

    def __init__(self, node_id: int, parameter: str, received: object, expected: str, reason: str) -> None:
        self.parameter, self.received, self.expected = parameter, received, expected
        super().__init__(
            f"node {node_id}: refused {parameter} {received!r} from the server, expected {expected}: {reason}"
        )


def weight_key(dp_mode: str) -> str:
    """The train-reply metric that weighs a client: the uniform weight under central DP (the noise is sized
    for an average of clipped updates), else num-examples. Server and clients derive it the same way."""
    return UNIFORM_WEIGHT if dp_mode == "central" else NUM_EXAMPLES


@dataclass(frozen=True)
class Announced:
    """A round's parameters as the client's own run config announces them, before the server says anything."""

    num_shares: int  # secagg-num-shares
    threshold: int  # secagg-reconstruction-threshold
    clipping_range: float  # secagg-clipping-range
    quantization_range: int  # secagg-quantization-range
    weight_key: str  # from dp-mode (weight_key)


def ring_size(num_shares: int) -> int:
    """The most nodes a neighbourhood holds, itself included: `neighbourhoods` puts num_shares // 2 on each
    side; a round of fewer nodes is one neighbourhood of all of them (and num-shares is then that count)."""
    return 2 * (num_shares // 2) + 1


def check_params(params: SecAggParams, node_id: int, announced: Announced) -> None:
    """Stage 1 on the client: refuse parameters other than the announced ones or below the protocol's floors.

    Raises SecAggRefused naming the first parameter refused, the value received and the value expected.
    """
    floor = MIN_LIVE_NEIGHBOURS + 1
    # The threshold counts the live nodes (itself included) that must remain around a survivor, and the shares
    # that rebuild a secret: a lower one lets the server strip a survivor's masks with fewer dropouts or fewer
    # colluding neighbours. Whatever the run config says, check_neighbourhood's floor holds too.
    announced_allowed = floor <= announced.threshold < announced.num_shares  # check_neighbourhood's rule
    if params.threshold != announced.threshold or not announced_allowed:
        raise SecAggRefused(
            node_id,
            "threshold",
            params.threshold,
            f"{announced.threshold} (secagg-reconstruction-threshold, at least {floor} and below "
            f"secagg-num-shares {announced.num_shares})",
            "a lower threshold rebuilds this node's secrets from fewer shares",
        )
    # num-shares is the run config's, or fewer when the round samples fewer clients (server/secagg.py: one
    # neighbourhood of all of them), never below the threshold: the server refuses such a round itself.
    if not announced.threshold <= params.num_shares <= announced.num_shares:
        raise SecAggRefused(
            node_id,
            "num-shares",
            params.num_shares,
            f"{announced.threshold}..{announced.num_shares} (secagg-num-shares, fewer in a smaller round)",
            "a larger neighbourhood hands more shares out; a smaller one is below the threshold",
        )
    # The grid: the server dequantises the sum with one grid for all; a grid of its own for one client would
    # scale that client's contribution apart from the others'.
    for parameter, received, expected in (
        ("clipping-range", params.clipping_range, announced.clipping_range),
        ("quantization-range", params.quantization_range, announced.quantization_range),
    ):
        if received != expected:
            why = "the quantisation grid must be the run's"
            raise SecAggRefused(node_id, parameter, received, f"{expected} (secagg-{parameter})", why)
    _check_constants(params, node_id, announced.weight_key)


def _check_constants(params: SecAggParams, node_id: int, expected_weight_key: str) -> None:
    """check_params' protocol constants: the modulus, the loss bound, the weight key and max-weight."""
    refused = None
    # The masks are 32-bit keystream words, uniform on 2**32 (expand_mask), and the server's no-wrap check
    # (check_modulus) is sized for that modulus: a constant of this code, not a setting.
    if params.modulus != MODULUS:
        refused = ("modulus", params.modulus, f"{MODULUS} (2**32)", "the masks are uniform on 2**32 only")
    elif params.loss_bound != LOSS_BOUND:  # also a constant: the loss coordinate's scale
        refused = ("loss-bound", params.loss_bound, str(LOSS_BOUND), "a constant of the protocol")
    # dp-mode decides the weight: uniform under central DP, whose noise is sized for an average of clipped
    # updates; a num-examples weight there would scale clipped updates apart.
    elif params.weight_key != expected_weight_key:
        refused = (
            "weight-key",
            params.weight_key,
            repr(expected_weight_key),
            "the run config's dp-mode sets it",
        )
    # A uniform weight is 1 for every client, so is its maximum: another max-weight would scale this client's
    # update apart from the others'. A window count is whole and at least 1. (At collect the client checks
    # that its own weight is not above max-weight: client_masked_vector.)
    elif params.weight_key == UNIFORM_WEIGHT and params.max_weight != 1.0:
        refused = ("max-weight", params.max_weight, "1.0 (uniform weights)", "every client weighs 1")
    elif params.max_weight < 1 or params.max_weight != int(params.max_weight):
        refused = ("max-weight", params.max_weight, "a whole number >= 1", "it is a window count")
    if refused is not None:
        raise SecAggRefused(node_id, *refused)


def node_ids(values: list[str], node_id: int, parameter: str) -> list[int]:
    """The node ids of a list the server sent, refused if one appears twice ('5' and '05' are one node)."""
    ids = [int(value) for value in values]
    if len(set(ids)) != len(ids):
        repeated = sorted({n for n in ids if ids.count(n) > 1})
        # A repeated id makes a list look longer than the nodes it names (an active set padded up to the
        # threshold), or two entries compete for one node's keys or ciphertext.
        raise SecAggRefused(node_id, parameter, repeated, "each node at most once", "a node named twice")
    return ids


# ----------------------------------------------------------------------------------------------- client side
@dataclass
class ClientSecrets:
    """A client's state across the four stages of one round (kept in its context, never sent as is)."""

    node_id: int
    params: SecAggParams
    sk1: bytes
    pk1: bytes
    sk2: bytes
    pk2: bytes
    mask_seed: bytes = b""
    public_keys: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)  # neighbours', own included
    seed_shares: dict[int, bytes] = field(default_factory=dict)  # owner -> its mask-seed share held here
    sk1_shares: dict[int, bytes] = field(default_factory=dict)  # owner -> its private-key-1 share held here
    live_neighbours: list[int] = field(default_factory=list)  # those whose shares arrived (stage 3)

    def to_config(self) -> dict[str, object]:
        """Flat ConfigRecord values (ints as str: node ids are unsigned 64-bit)."""
        return {
            "node-id": str(self.node_id),
            **{f"param-{k}": v for k, v in self.params.to_config().items()},
            "sk1": self.sk1,
            "pk1": self.pk1,
            "sk2": self.sk2,
            "pk2": self.pk2,
            "mask-seed": self.mask_seed,
            "key-owners": [str(n) for n in self.public_keys],
            "key-pk1": [keys[0] for keys in self.public_keys.values()],
            "key-pk2": [keys[1] for keys in self.public_keys.values()],
            "seed-share-owners": [str(n) for n in self.seed_shares],
            "seed-shares": list(self.seed_shares.values()),
            "sk1-share-owners": [str(n) for n in self.sk1_shares],
            "sk1-shares": list(self.sk1_shares.values()),
            "live-neighbours": [str(n) for n in self.live_neighbours],
        }

    @classmethod
    def from_config(cls, values: dict) -> ClientSecrets:
        def ids(key: str) -> list[int]:
            return [int(n) for n in values.get(key, [])]

        params = {k[len("param-") :]: v for k, v in values.items() if k.startswith("param-")}
        key_pairs = zip(values.get("key-pk1", []), values.get("key-pk2", []), strict=True)
        return cls(
            node_id=int(values["node-id"]),
            params=SecAggParams.from_config(params),
            sk1=values["sk1"],
            pk1=values["pk1"],
            sk2=values["sk2"],
            pk2=values["pk2"],
            mask_seed=values.get("mask-seed", b""),
            public_keys=dict(zip(ids("key-owners"), key_pairs, strict=True)),
            seed_shares=dict(zip(ids("seed-share-owners"), values.get("seed-shares", []), strict=True)),
            sk1_shares=dict(zip(ids("sk1-share-owners"), values.get("sk1-shares", []), strict=True)),
            live_neighbours=ids("live-neighbours"),
        )


def client_setup(node_id: int, params: SecAggParams) -> ClientSecrets:
    """Stage 1: two fresh key pairs for this round."""
    sk1, pk1 = generate_key_pairs()
    sk2, pk2 = generate_key_pairs()
    return ClientSecrets(
        node_id=node_id,
        params=params,
        sk1=private_key_to_bytes(sk1),
        pk1=public_key_to_bytes(pk1),
        sk2=private_key_to_bytes(sk2),
        pk2=public_key_to_bytes(pk2),
    )


def client_share_keys(
    secrets: ClientSecrets, neighbour_keys: dict[int, tuple[bytes, bytes]]
) -> dict[int, bytes]:
    """Stage 2: Shamir-share a fresh mask seed and private key 1; encrypt each neighbour's pair of shares.

    `neighbour_keys` are the public keys of the live neighbourhood, the client's own included (it keeps its
    own shares). Returns destination node -> ciphertext.
    """
    # Below the threshold the client's secrets could not be rebuilt (nor its update kept behind 3 live
    # neighbours); above the ring's size the server hands this node's shares to more nodes than the run
    # config's neighbourhood (Sybils of its own, say). A list between the two is all a client can require: a
    # neighbour missing from it is indistinguishable from one lost at setup.
    params = secrets.params
    if not params.threshold <= len(neighbour_keys) <= ring_size(params.num_shares):
        raise SecAggRefused(
            secrets.node_id,
            "number of neighbours listed",
            len(neighbour_keys),
            f"{params.threshold}..{ring_size(params.num_shares)}, itself included (the reconstruction "
            f"threshold up to the neighbourhood of num-shares {params.num_shares})",
            "too few to rebuild its secrets, or more than its neighbourhood",
        )
    if neighbour_keys.get(secrets.node_id) != (secrets.pk1, secrets.pk2):
        raise SecAggError(f"node {secrets.node_id}: the server relayed a wrong public key for this node")
    all_keys = [key for pair in neighbour_keys.values() for key in pair]
    if len(set(all_keys)) != len(all_keys):
        raise SecAggError(f"node {secrets.node_id}: two neighbours advertise the same public key")
    secrets.public_keys = dict(neighbour_keys)
    secrets.mask_seed = os.urandom(SEED_BYTES)
    seed_shares = create_shares(secrets.mask_seed, secrets.params.threshold, len(neighbour_keys))
    sk1_shares = create_shares(secrets.sk1, secrets.params.threshold, len(neighbour_keys))
    ciphertexts = {}
    for index, (node, (_, pk2)) in enumerate(neighbour_keys.items()):
        if node == secrets.node_id:
            secrets.seed_shares[node], secrets.sk1_shares[node] = seed_shares[index], sk1_shares[index]
            continue
        key = generate_shared_key(bytes_to_private_key(secrets.sk2), bytes_to_public_key(pk2))
        plaintext = share_keys_plaintext_concat(secrets.node_id, node, seed_shares[index], sk1_shares[index])
        ciphertexts[node] = encrypt(key, plaintext)
    return ciphertexts


def client_masked_vector(
    secrets: ClientSecrets,
    ciphertexts: dict[int, bytes],
    update: list[np.ndarray],
    weight: float,
    *,
    loss: float,
) -> tuple[np.ndarray, int]:
    """Stage 3: decrypt the neighbours' shares, then mask the weighted, quantised update and loss.

    `ciphertexts`: sender -> ciphertext (the neighbours that completed stage 2). Returns the masked uint32
    vector [q_weight, update..., loss] and how many update coordinates were clipped to the clipping range.
    """
    params = secrets.params
    for source, ciphertext in ciphertexts.items():
        if source not in secrets.public_keys:
            raise SecAggError(f"node {secrets.node_id}: shares from {source}, which is not a neighbour")
        key = generate_shared_key(
            bytes_to_private_key(secrets.sk2), bytes_to_public_key(secrets.public_keys[source][1])
        )
        try:  # Fernet: AES-CBC with an HMAC-SHA256 tag, checked before anything is decrypted
            plaintext = decrypt(key, ciphertext)
        except InvalidToken as error:
            raise SecAggError(
                f"node {secrets.node_id}: the ciphertext relayed as from {source} fails authentication "
                "(altered, or not encrypted by that node for this one): refused"
            ) from error
        sender, destination, seed_share, sk1_share = share_keys_plaintext_separate(plaintext)
        # The key of a pair is symmetric: a ciphertext this node sent to `source`, relayed back to it as if
        # from `source`, authenticates. The names inside the plaintext tell the two directions apart.
        if (sender, destination) != (source, secrets.node_id):
            raise SecAggError(
                f"node {secrets.node_id}: a ciphertext from {source} names {sender} -> {destination}"
            )
        secrets.seed_shares[source], secrets.sk1_shares[source] = seed_share, sk1_share
    if len(ciphertexts) + 1 < params.threshold:
        raise SecAggError(
            f"node {secrets.node_id}: shares from {len(ciphertexts)} neighbours, fewer than the threshold "
            f"{params.threshold} - 1"
        )
    secrets.live_neighbours = sorted(ciphertexts)
    # A weight above max-weight would scale the update past the quantisation range that the server's
    # no-wrap check (check_modulus) sized the modulus for, and the weight coordinate past Q.
    if weight > params.max_weight:
        raise SecAggRefused(
            secrets.node_id, "max-weight", params.max_weight, f">= {weight} (this node's weight)", "too low"
        )
    q_weight = int(round(weight / params.max_weight * params.quantization_range))
    scale = q_weight / params.quantization_range  # the dequantised ratio: what the server divides by
    flat = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in update]) * scale
    clipped = int(np.count_nonzero(np.abs(flat) > params.clipping_range))
    loss_coordinate = float(np.clip(loss, -params.loss_bound, params.loss_bound)) / params.loss_bound
    flat = np.append(flat, loss_coordinate * params.clipping_range * scale)
    quantized = quantize([flat], params.clipping_range, params.quantization_range)[0].astype(np.int64)
    vector = np.concatenate([np.array([q_weight], dtype=np.int64), quantized])
    vector += expand_mask(secrets.mask_seed, SELF_MASK, vector.shape, params.modulus)
    for neighbour in secrets.live_neighbours:
        vector += _pairwise_mask(
            secrets.sk1, secrets.public_keys[neighbour][0], secrets.node_id, neighbour, params, vector.shape
        )
    return (vector % params.modulus).astype(np.uint32), clipped


def client_unmask_shares(secrets: ClientSecrets, active: list[int], dropped: list[int]) -> dict[int, bytes]:
    """Stage 4: mask-seed shares of surviving neighbours, private-key shares of dropped ones.

    Refuses to reveal both secrets of one node: with both the server could unmask that node alone. The
    checks below refuse whatever lists an honest server (server/secagg.py) never sends; a refusal raises.
    """
    own = secrets.node_id
    if set(active) & set(dropped):
        raise SecAggError(f"node {own}: nodes listed as both active and dropped")
    # Only survivors are asked: the server holds this node's masked vector and will rebuild its own mask from
    # its neighbours' shares of its mask seed. Declared dropped, this node would add the shares of its own
    # private key (all its pairwise masks); left out of the active set, the server would count the threshold
    # below without it. The only node whose vector a client knows the server has is itself.
    if own in dropped:
        raise SecAggError(f"node {own}: asked for its own private key as a dropped node")
    if own not in active:
        raise SecAggRefused(own, "active set", sorted(active), f"a set with {own} itself", "it survived")
    # Each node once (node_ids refuses repeats in the message): a repeated one would pad the count below.
    if len(set(active)) != len(active) or len(set(dropped)) != len(dropped):
        raise SecAggRefused(own, "active/dropped lists", (active, dropped), "no repeats", "a node twice")
    # Nodes it holds no shares of are outside its neighbourhood, or did not share keys with it: the server
    # asks for shares that it does not need for the sum.
    unknown = (set(active) | set(dropped)) - set(secrets.seed_shares)
    if unknown:
        raise SecAggError(f"node {own}: holds no shares of {sorted(unknown)}")
    # An honest server refuses the round when a survivor's neighbourhood keeps fewer than threshold live
    # nodes (threshold_shortfall); releasing private-key shares then would leave this node's update behind
    # fewer than threshold - 1 live pairwise masks.
    if len(active) < secrets.params.threshold:
        raise SecAggRefused(
            own,
            "number of active nodes",
            len(active),
            f"at least the reconstruction threshold {secrets.params.threshold}",
            "too few survivors around this node",
        )
    shares = {node: secrets.seed_shares[node] for node in active}
    shares.update({node: secrets.sk1_shares[node] for node in dropped})
    return shares


def _pairwise_mask(
    own_sk1: bytes, other_pk1: bytes, own: int, other: int, params: SecAggParams, shape: tuple[int, ...]
) -> np.ndarray:
    """+mask for the larger node id, -mask for the smaller: the pair's masks cancel in the sum."""
    # Flower's shared key: HKDF-SHA256 of the ECDH secret, 32 bytes, urlsafe-base64 encoded (for Fernet).
    key = generate_shared_key(bytes_to_private_key(own_sk1), bytes_to_public_key(other_pk1))
    mask = expand_mask(base64.urlsafe_b64decode(key), PAIRWISE_MASK, shape, params.modulus)
    return mask if own > other else -mask


# ----------------------------------------------------------------------------------------------- server side
def neighbourhoods(nodes: list[int], num_shares: int, seed: int) -> dict[int, set[int]]:
    """SecAgg+'s ring: nodes shuffled, each with num_shares // 2 neighbours on both sides (itself included).

    With fewer nodes than that, every node's neighbourhood is the whole round (plain SecAgg).
    """
    order = list(nodes)
    random.Random(seed).shuffle(order)
    half = num_shares // 2
    if 2 * half + 1 >= len(order):
        return {node: set(order) for node in order}
    return {
        node: {order[(index + offset) % len(order)] for offset in range(-half, half + 1)}
        for index, node in enumerate(order)
    }


def threshold_shortfall(graph: dict[int, set[int]], alive: set[int], threshold: int) -> str | None:
    """Why the round cannot go on (a live node's neighbourhood has < threshold alive), or None."""
    for node in sorted(alive):
        live = graph[node] & alive
        if len(live) < threshold:
            return (
                f"node {node} has {len(live)} live neighbours (itself included), fewer than the "
                f"reconstruction threshold {threshold}"
            )
    return None


def route_ciphertexts(sent: dict[int, dict[int, bytes]], alive: set[int]) -> dict[int, dict[int, bytes]]:
    """Stage 2 -> 3: sender -> {destination: ciphertext} becomes destination -> {sender: ciphertext}."""
    inbox: dict[int, dict[int, bytes]] = {node: {} for node in alive}
    for sender, by_destination in sent.items():
        if sender not in alive:
            continue
        for destination, ciphertext in by_destination.items():
            if destination in inbox:
                inbox[destination][sender] = ciphertext
    return inbox


def unmask_sum(
    masked: dict[int, np.ndarray],
    shares: dict[int, list[bytes]],
    dropped: set[int],
    graph: dict[int, set[int]],
    public_keys: dict[int, tuple[bytes, bytes]],
    params: SecAggParams,
) -> tuple[np.ndarray, float]:
    """Stage 4 on the server: the weighted average update of the clients in `masked`, and their total weight.

    `masked`: survivor -> masked vector; `shares`: owner -> the shares its neighbours released (mask seeds of
    survivors, private keys of `dropped`). Returns (flat float64 average update, sum of dequantised weights).
    """
    total = np.zeros_like(next(iter(masked.values())), dtype=np.int64)
    for vector in masked.values():
        total = (total + vector.astype(np.int64)) % params.modulus
    for node in list(masked) + sorted(dropped):
        if len(shares.get(node, [])) < params.threshold:
            raise SecAggError(
                f"only {len(shares.get(node, []))} shares of node {node}'s secret arrived, fewer than the "
                f"reconstruction threshold {params.threshold}"
            )
        secret = combine_shares(shares[node])
        if node in masked:  # a survivor: remove its own mask
            total -= expand_mask(secret, SELF_MASK, total.shape, params.modulus)
        else:  # a dropped node: remove the pairwise masks the survivors added for it
            for neighbour in graph[node] & set(masked):
                mask = _pairwise_mask(secret, public_keys[neighbour][0], node, neighbour, params, total.shape)
                total += mask  # survivors added -mask_of(dropped's view); this cancels it
        total %= params.modulus
    q_weight_sum = int(total[0])
    if q_weight_sum <= 0:
        raise SecAggError("the unmasked weights sum to 0 (wrong shares or max-weight)")
    weight_sum = q_weight_sum / params.quantization_range
    # Dequantise the sum of n quantised values: each carried an offset of +clipping_range.
    step = 2 * params.clipping_range / params.quantization_range
    weighted_sum = total[1:].astype(np.float64) * step - len(masked) * params.clipping_range
    return weighted_sum / weight_sum, weight_sum


def split_loss(average: np.ndarray, params: SecAggParams) -> tuple[np.ndarray, float]:
    """unmask_sum's average -> (the flat average update, the clients' weighted mean train loss)."""
    return average[:-1], float(average[-1]) / params.clipping_range * params.loss_bound


def check_modulus(num_clients: int, quantization_range: int, modulus: int = MODULUS) -> None:
    """The sum of num_clients values in 0..quantization_range must not wrap around the modulus."""
    if num_clients * quantization_range >= modulus:
        raise SecAggError(
            f"{num_clients} clients x secagg-quantization-range {quantization_range} overflow the 2**32 "
            f"modulus: lower secagg-quantization-range below {modulus // num_clients}"
        )


def split_update(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """A flat vector back into arrays of `shapes` (the global model's order)."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    if sum(sizes) != flat.size:
        raise SecAggError(
            f"the unmasked vector has {flat.size} values for a model of {sum(sizes)} parameters"
        )
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]
