"""Local interpretation (run config `interpret-on-client`): the device runs the rules interpreter itself.

Nothing per window leaves the device: it uploads only the SET of distinct interpretation texts of its training
windows and of its evaluation windows (no order, no count, no link to a window) and receives their text-space
embeddings, from which it builds its own targets Z and text-path embeddings. The rules are deterministic and
the client computes the same summaries the server would have received, so the targets equal those of the
default mode exactly (tests/test_local_interpretation.py).
"""

from __future__ import annotations

from flwr.app import ConfigRecord, RecordDict

from client.device_client import window_summaries
from common.data.windows import WindowSet
from common.federation import protocol
from common.federation.partition import ClientData
from common.federation.run_config import FederationConfig
from common.language.factory import make_interpreter
from common.language.prompts import SensorContext


def _context(windows: WindowSet, config: FederationConfig) -> SensorContext:
    """The recording context exactly as the server builds it from an uploaded summary's context record."""
    return SensorContext(
        sampling_rate=float(windows.sampling_rate),
        position=windows.position,
        device=windows.device,
        candidate_activities=config.all_activities,
        has_gyro=bool(windows.has_gyro),
    )


def interpret_locally(data: ClientData, config: FederationConfig) -> dict[str, list[str]]:
    """Per-window texts of the training ("texts") and evaluation ("eval-texts") windows the client holds."""
    interpreter = make_interpreter("rules", inclination=config.walking_frame)
    texts: dict[str, list[str]] = {}
    for key, windows, present in (
        ("texts", data.train, data.trains),
        ("eval-texts", data.eval, data.evaluates),
    ):
        if present and len(windows):
            texts[key] = interpreter.interpret(window_summaries(windows), _context(windows, config))
    return texts


def distinct_texts_record(texts: dict[str, list[str]]) -> ConfigRecord:
    """What is uploaded: each kind's distinct texts, sorted (the order says nothing about the windows)."""
    return ConfigRecord({key: sorted(set(values)) for key, values in texts.items()})


def targets_from_table(content: RecordDict, texts: dict[str, list[str]]) -> RecordDict:
    """The server's embedding table -> the per-window targets record of the default mode ("z", "z-eval")."""
    table = content[protocol.TEXT_TABLE]
    embeddings = table["embeddings"].numpy()
    row = {text: index for index, text in enumerate(content[protocol.TEXT_TABLE_TEXTS]["texts"])}
    arrays = {}
    for key, target_key in (("texts", "z"), ("eval-texts", "z-eval")):
        if key in texts:
            missing = [text for text in texts[key] if text not in row]
            if missing:
                raise ValueError(
                    f"targets: the server's text table lacks {len(missing)} of this client's texts"
                )
            arrays[target_key] = embeddings[[row[text] for text in texts[key]]]
    return RecordDict({protocol.TARGET_ARRAYS: protocol.array_record(**arrays)})
