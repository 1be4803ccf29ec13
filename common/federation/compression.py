"""Lean model updates: what a client sends instead of its float32 weights (run config update-compression).

A client sends its UPDATE (trained weights minus the global weights it received), compressed:

- "int8": every float tensor quantised to int8 with one float32 scale per tensor (about 4x smaller);
- "sparse-int8": only the `topk_fraction` largest entries of each tensor (by magnitude), int8 with a scale,
  plus a bit mask saying where they are (1 bit per weight): at 20% about 12x smaller than float32.

A tensor that did not change (one a client does not train) is not sent: one bit per float tensor says which.

Error feedback (Seide et al. 2014; Karimireddy et al. 2019): what compression dropped this round stays on the
client (`residual`) and is added to its next update: delayed, never lost, and bounded by one round's error.

The server decodes a reply into full float32 weights with that round's global weights (`decode_arrays`), so
aggregation, clipping and checkpoints are unchanged. The downlink runs the same code the other way round
(server/updates.py `Downlink`): the server compresses each change of the global model with its own residual,
and a client that holds an earlier version receives the chain of changes since (`pack_deltas`,
`apply_deltas`) instead of the whole model.
"""

from __future__ import annotations

import numpy as np

# Keys of the reply: the sent float tensors' values in one int8 vector (state-dict order), one float32 scale
# per sent tensor, with sparse-int8 one packed bit mask over their weights, and one packed bit per float
# tensor of the model saying whether it was sent. One array each: every array in a Flower record carries a
# ~128-byte header, which per tensor would cost more than a small tensor's values.
QUANTISED, SCALE, MASK, TENSORS = "update|q", "update|s", "update|m", "update|t"
COMPRESSIONS = ("int8", "sparse-int8")


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    scale = np.float32(peak / 127.0 if peak > 0 else 1.0)
    return np.clip(np.rint(values / scale), -127, 127).astype(np.int8), scale


def _float_names(arrays: dict[str, np.ndarray]) -> list[str]:
    return [name for name, value in arrays.items() if np.asarray(value).dtype.kind == "f"]


def encode_update(
    weights: dict[str, np.ndarray],
    base: dict[str, np.ndarray],
    residual: dict[str, np.ndarray] | None,
    mode: str,
    topk_fraction: float = 0.2,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(arrays to send, the new residual) for trained `weights` that started from `base`.

    `weights` may hold only some of `base`'s tensors (the others did not change). `residual` is the previous
    round's error (None at first); the new one is what this round's arrays do not carry of update + old
    residual. With sparse-int8 each tensor keeps its `topk_fraction` largest entries.
    """
    if mode not in COMPRESSIONS:
        raise ValueError(f"update compression '{mode}' unknown; use one of {COMPRESSIONS}")
    sent: dict[str, np.ndarray] = {}
    new_residual: dict[str, np.ndarray] = {}
    values, scales, masks, carried = [], [], [], []
    for name in _float_names(base):
        reference = np.asarray(base[name], dtype=np.float32)
        update = np.zeros_like(reference)
        if name in weights:
            update = np.asarray(weights[name], dtype=np.float32) - reference
        if residual is not None and name in residual:
            update = update + residual[name]
        carried.append(bool(np.any(update)))
        if not carried[-1]:  # unchanged: nothing to send, nothing left over
            continue
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
    for name, value in weights.items():
        if np.asarray(value).dtype.kind != "f":
            sent[name] = np.asarray(value)
    sent[QUANTISED] = np.concatenate(values) if values else np.zeros(0, np.int8)
    sent[SCALE] = np.asarray(scales, dtype=np.float32)
    sent[TENSORS] = np.packbits(np.asarray(carried, dtype=bool))
    if mode == "sparse-int8":
        sent[MASK] = np.packbits(np.concatenate(masks)) if masks else np.zeros(0, np.uint8)
    return sent, new_residual


def is_compressed(arrays: dict[str, np.ndarray] | list[str]) -> bool:
    return QUANTISED in arrays


def decode_arrays(sent: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Full weights (in `base`'s key order) from a compressed reply and the global weights it started from."""
    floats = _float_names(base)
    carried = np.unpackbits(np.asarray(sent[TENSORS]), count=len(floats)).astype(bool)
    scales = np.asarray(sent[SCALE], dtype=np.float32)
    if len(scales) != int(carried.sum()):
        raise ValueError(f"compressed update: {len(scales)} scales for {int(carried.sum())} sent tensors")
    changed = [name for name, flag in zip(floats, carried, strict=True) if flag]
    total = sum(np.asarray(base[name]).size for name in changed)
    chosen = np.unpackbits(np.asarray(sent[MASK]), count=total).astype(bool) if MASK in sent else None
    quantised = np.asarray(sent[QUANTISED]).astype(np.float32)
    expected = int(chosen.sum()) if chosen is not None else total
    if quantised.size != expected:
        raise ValueError(f"compressed update: {quantised.size} values, expected {expected}")
    weights: dict[str, np.ndarray] = {}
    offset = value_offset = 0
    scale_of = dict(zip(changed, scales, strict=True))
    for name, reference in base.items():
        reference = np.asarray(reference)
        if name not in scale_of:  # unchanged float tensor, or a non-float one (sent as is when it changed)
            weights[name] = np.asarray(sent[name]) if name in sent else reference
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
