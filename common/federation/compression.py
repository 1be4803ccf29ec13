"""Lean model updates: what a client sends instead of its float32 weights (run config update-compression).

A client sends its UPDATE (trained weights minus the global weights it received), compressed:

- "int8": every float tensor quantised to int8 with one float32 scale per tensor (about 4x smaller);
- "sparse-int8": only the `topk_fraction` largest entries of each tensor (by magnitude), int8 with a scale,
  plus a bit mask saying where they are (1 bit per weight): at 20% about 12x smaller than float32.

Error feedback (Seide et al. 2014; Karimireddy et al. 2019): what compression dropped this round stays on the
client (`residual`) and is added to its next update, so nothing is lost for good, only delayed; the residual
stays bounded by the compression error of one round instead of growing.

The server decodes a reply back into full weights with the global weights of that round
(`decode_arrays`), so aggregation, clipping and checkpoints see ordinary float32 weights. Keys of a
reply: see QUANTISED, SCALE, MASK below; a non-float tensor goes as is under its own name.

The downlink uses the same code the other way round (server/updates.py `Downlink`): the server compresses
each change of the global model with its own residual, and a client that holds an earlier version receives
the chain of changes since (`pack_deltas`, `apply_deltas`) instead of the whole model.
"""

from __future__ import annotations

import numpy as np

# Keys of the reply: all float tensors' values in one int8 vector (state-dict order), one float32 scale per
# tensor, with sparse-int8 one packed bit mask over all weights. One array each: every array in a Flower
# record carries a ~128-byte header, which per tensor would cost more than a small tensor's values.
QUANTISED, SCALE, MASK = "update|q", "update|s", "update|m"
COMPRESSIONS = ("int8", "sparse-int8")


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    scale = np.float32(peak / 127.0 if peak > 0 else 1.0)
    return np.clip(np.rint(values / scale), -127, 127).astype(np.int8), scale


def encode_update(
    weights: dict[str, np.ndarray],
    base: dict[str, np.ndarray],
    residual: dict[str, np.ndarray] | None,
    mode: str,
    topk_fraction: float = 0.2,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(arrays to send, the new residual) for trained `weights` that started from `base`.

    `residual` is the previous round's error (None at first); the new one is what this round's arrays do not
    carry of update + old residual. With sparse-int8 each tensor keeps its `topk_fraction` largest entries.
    """
    if mode not in COMPRESSIONS:
        raise ValueError(f"update compression '{mode}' unknown; use one of {COMPRESSIONS}")
    sent: dict[str, np.ndarray] = {}
    new_residual: dict[str, np.ndarray] = {}
    values, scales, masks = [], [], []
    for name, value in weights.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            sent[name] = value
            continue
        update = value.astype(np.float32) - np.asarray(base[name], dtype=np.float32)
        if residual is not None and name in residual:
            update = update + residual[name]
        flat = update.ravel()
        if mode == "int8":
            q, scale = _quantise(flat)
            decoded = q.astype(np.float32) * scale
        else:
            k = max(1, int(np.ceil(topk_fraction * flat.size)))
            chosen = np.zeros(flat.size, dtype=bool)
            chosen[np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]] = True
            q, scale = _quantise(flat[chosen])
            masks.append(chosen)
            decoded = np.zeros(flat.size, dtype=np.float32)
            decoded[chosen] = q.astype(np.float32) * scale
        values.append(q)
        scales.append(scale)
        new_residual[name] = (flat - decoded).reshape(update.shape)
    sent[QUANTISED] = np.concatenate(values) if values else np.zeros(0, np.int8)
    sent[SCALE] = np.asarray(scales, dtype=np.float32)
    if masks:
        sent[MASK] = np.packbits(np.concatenate(masks))
    return sent, new_residual


def is_compressed(arrays: dict[str, np.ndarray] | list[str]) -> bool:
    return QUANTISED in arrays


def decode_arrays(sent: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Full weights (in `base`'s key order) from a compressed reply and the global weights it started from."""
    floats = [name for name, value in base.items() if np.asarray(value).dtype.kind == "f"]
    scales = np.asarray(sent[SCALE], dtype=np.float32)
    if len(scales) != len(floats):
        raise ValueError(f"compressed update: {len(scales)} scales for {len(floats)} float tensors")
    total = sum(np.asarray(base[name]).size for name in floats)
    chosen = np.unpackbits(np.asarray(sent[MASK]), count=total).astype(bool) if MASK in sent else None
    quantised = np.asarray(sent[QUANTISED]).astype(np.float32)
    expected = int(chosen.sum()) if chosen is not None else total
    if quantised.size != expected:
        raise ValueError(f"compressed update: {quantised.size} values, expected {expected}")
    weights: dict[str, np.ndarray] = {}
    offset = value_offset = 0
    scale_of = dict(zip(floats, scales, strict=True))
    for name, reference in base.items():
        reference = np.asarray(reference)
        if name not in scale_of:
            if name not in sent:
                raise ValueError(f"compressed update: tensor '{name}' missing")
            weights[name] = np.asarray(sent[name])
            continue
        size = reference.size
        if chosen is None:
            update = quantised[offset : offset + size] * scale_of[name]
        else:
            mask = chosen[offset : offset + size]
            count = int(mask.sum())
            update = np.zeros(size, dtype=np.float32)
            update[mask] = quantised[value_offset : value_offset + count] * scale_of[name]
            value_offset += count
        offset += size
        weights[name] = (reference.astype(np.float32) + update.reshape(reference.shape)).astype(np.float32)
    return weights


def pack_deltas(deltas: dict[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Compressed model changes {version: encoded change to it from version - 1} as one flat record."""
    return {f"{version}/{key}": value for version, delta in deltas.items() for key, value in delta.items()}


def unpack_deltas(packed: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    deltas: dict[int, dict[str, np.ndarray]] = {}
    for name, value in packed.items():
        version, key = name.split("/", 1)
        deltas.setdefault(int(version), {})[key] = value
    return dict(sorted(deltas.items()))


def apply_deltas(
    weights: dict[str, np.ndarray], version: int, deltas: dict[int, dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], int]:
    """(weights, version) after every change newer than `version`, in order; a gap in the chain raises."""
    for target, delta in sorted(deltas.items()):
        if target <= version:  # already held (the client is ahead of what the server knew of it)
            continue
        if target != version + 1:
            raise ValueError(f"downlink: the model held is version {version}, the next step sent is {target}")
        weights, version = decode_arrays(delta, weights), target
    return weights, version


def nbytes(arrays: dict[str, np.ndarray]) -> int:
    return int(sum(np.asarray(value).nbytes for value in arrays.values()))


__all__ = [
    "COMPRESSIONS",
    "apply_deltas",
    "decode_arrays",
    "encode_update",
    "is_compressed",
    "nbytes",
    "pack_deltas",
    "unpack_deltas",
]
