"""Local interpretation (run config `interpret-on-client`), the server's half: embed the texts a client holds.

The client sent only its distinct interpretation texts (client/local_interpretation.py); the server answers
with their text-space embeddings, one row per text, and keeps nothing per window.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, RecordDict

from common.federation import protocol
from server.cloud import Cloud


def text_table_records(cloud: Cloud, uploaded: ConfigRecord, model_config: ConfigRecord) -> RecordDict:
    """Embeddings of the client's distinct texts (training texts first, embedded in the order the default mode
    embeds a client's windows, so both modes meet identical encoder batches), and the model architecture."""
    texts: list[str] = []
    for key in ("texts", "eval-texts"):
        if key in uploaded:
            new = [text for text in uploaded[key] if text not in texts]
            cloud.embed(list(uploaded[key]))  # fills the cache batch by batch, as targets_for does
            texts.extend(new)
    embeddings = cloud.embed(texts)
    return RecordDict(
        {
            protocol.TEXT_TABLE: protocol.array_record(embeddings=embeddings),
            protocol.TEXT_TABLE_TEXTS: ConfigRecord({"texts": texts}),
            protocol.MODEL_CONFIG: model_config,
        }
    )
