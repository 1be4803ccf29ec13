"""The server's role in LanHAR's cloud-client setting, free of Flower.

The cloud holds the labeled source data, the interpreter (rules or an LLM), the text encoder and the label
descriptions. It trains stage 1 (or loads a stage-1 artifact), pre-trains the sensor encoder on its own source
windows, turns the summaries clients upload into text-space targets Z, and builds label banks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from common.base.device import resolve_device
from common.base.runtime import set_seed
from common.data.devices import load_device_type
from common.data.labels import load_vocabulary
from common.data.loading import load_dataset
from common.data.synthetic import generate_windows
from common.data.windows import WindowSet, split_by_user
from common.federation.mixed import real_data_sets, uses_user_layout
from common.federation.partition import client_eval_mode, held_out_user_split
from common.federation.run_config import FederationConfig
from common.language.factory import make_interpreter
from common.language.interpreter import Interpreter
from common.language.prompts import SensorContext
from common.method.lanhar import describe_labels, interpret_windows, label_bank, to_walking_frame
from common.method.text_space_cache import train_or_reuse_text_space
from common.method.train import TextTrainConfig, train_sensor_encoder, train_sensor_epochs
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig
from common.models.text_encoder import TextEncoder
from common.models.zero_shot import LabelBank

log = logging.getLogger("fedlanhar.server")

DESCRIPTIONS_PER_LABEL = 6


def make_run_interpreter(config: FederationConfig) -> Interpreter:
    if config.walking_frame:  # the run config allows it only with the rules interpreter
        return make_interpreter(config.interpreter, inclination=True)
    if config.interpreter == "openai":
        return make_interpreter(
            "openai",
            base_url=config.llm_base_url,
            model=config.llm_model,
            api_key_env=config.llm_api_key_env or None,  # "" = a local server that needs no key
            cache_path=str(Path(config.out_dir or ".") / "llm_cache.sqlite"),
        )
    return make_interpreter(config.interpreter)


def load_source(config: FederationConfig) -> WindowSet:
    """The labeled source set: the synthetic default (one device type) or a real data set."""
    if config.source == "synthetic":
        device = load_device_type(config.source_device)
        windows = generate_windows(
            config.activity_list,
            config.source_windows_per_activity,
            device=device,
            seed=config.seed,
            n_users=6,
        )
        return to_walking_frame(windows) if config.walking_frame else windows
    windows = load_dataset(config.source, config.data_dir)
    if config.walking_frame:  # each user's reference from all of the user's windows, as the central run does
        windows = to_walking_frame(windows)
    if (
        uses_user_layout(config)
        and config.source in real_data_sets(config)
        and client_eval_mode(config.source, config) == "held-out-users"
    ):
        # The source's held-out users are clients (they only evaluate): the server keeps its training users.
        train_users = held_out_user_split(config.source, config).train_users
        windows = windows.subset(np.flatnonzero(np.isin(windows.user, train_users)))
        if config.source_eval_users_fraction > 0:
            raise ValueError(
                f"run config: key 'source-eval-users-fraction': source '{config.source}' is also a client "
                "data set, whose held-out users already decide which of its users the server trains on"
            )
    present = [a for a in config.activity_list if a in windows.label_names]
    if len(present) < 2:
        raise ValueError(
            f"source '{config.source}': only {present} of the activities {config.activity_list} "
            "are among its labels"
        )
    windows = windows.select_activities(present)
    if config.source_eval_users_fraction > 0:
        # The central run's source split (simulations/central.py load_pair): same windows, fraction and seed.
        windows, _ = split_by_user(windows, config.source_eval_users_fraction, config.seed)
    return windows


class Cloud:
    def __init__(self, config: FederationConfig, out_dir: Path, text_encoder_dir: Path | None = None) -> None:
        self.config = config
        self.out_dir = out_dir
        self.device = resolve_device(config.device)
        self.vocabulary = load_vocabulary()
        self.interpreter = make_run_interpreter(config)
        self.source = load_source(config)
        self.descriptions = describe_labels(self.interpreter, config.all_activities, DESCRIPTIONS_PER_LABEL)
        trained_dir = text_encoder_dir or (
            Path(config.text_encoder_path) if config.text_encoder_path else None
        )
        self.stage1_done = trained_dir is not None
        if trained_dir is not None:
            log.info("stage 1: loading the trained text encoder from %s", trained_dir)
            self.encoder = TextEncoder.load(trained_dir).to(self.device)
            self.stage1_history: dict = {"loaded-from": str(trained_dir)}
        else:
            self.encoder = TextEncoder(config.text_encoder).to(self.device)
            self.stage1_history = {}
        self.source_interpretations = interpret_windows(self.source, self.interpreter, config.activity_list)
        # Interpretations repeat across windows and clients (a fixed vocabulary): embed each text once.
        self._embeddings: dict[str, np.ndarray] = {}

    def train_text_space(self) -> dict:
        """Stage 1 on the source interpretations (skipped when a stage-1 artifact was given; reused from
        `text-space-cache` when a run with the same stage-1 inputs trained it)."""
        if self.stage1_done:
            return self.stage1_history
        text_config = TextTrainConfig(
            max_steps=self.config.stage1_steps,
            batch_size=self.config.stage1_batch_size,
            seed=self.config.seed,
        )
        self.encoder, self.stage1_history = train_or_reuse_text_space(
            self.encoder,
            self.source_interpretations.texts,
            self.source.labels(),
            self.descriptions,
            self.vocabulary,
            text_config,
            Path(self.config.text_space_cache) if self.config.text_space_cache else None,
            progress=True,
        )
        self.encoder.save(self.out_dir / "text_encoder")
        self._embeddings.clear()  # the encoder changed: embeddings from before stage 1 are stale
        return self.stage1_history

    def sensor_encoder_config(self) -> SensorEncoderConfig:
        width = self.config.sensor_width or self.encoder.dim
        return SensorEncoderConfig(
            d_model=width,
            ff_dim=2 * width,
            out_dim=self.encoder.dim,
            input_frame=self.config.sensor_input_frame,
            analysis_token=self.config.sensor_analysis_token,
            walking_frame=self.config.walking_frame,
        )

    def pretrain_sensor_encoder(self) -> tuple[SensorEncoder, dict]:
        """Stage 2 on the server's own labeled-source windows: the global model the clients start from."""
        # Re-seeded, as the central run's stage 2: the same model whether stage 1 ran here or was loaded.
        set_seed(self.config.seed)
        model = SensorEncoder(self.sensor_encoder_config()).to(self.device)
        if self.config.server_pretrain_epochs == 0:
            return model, {}
        history = train_sensor_encoder(
            model,
            self.source.X,
            self.embed(self.source_interpretations.texts),
            self.config.sensor_train_config(self.config.server_pretrain_epochs, self.config.seed),
            progress=False,
        )
        return model, history

    def train_round(self, model: SensorEncoder, server_round: int) -> dict:
        """The server's own local update in a round (`server-train-epochs`), in place on `model`.

        The same stage-2 loss as a client's (common.method.train.train_sensor_epochs), on the labeled source.
        """
        seed = self.config.seed * 1000 + server_round * 7919 + 999_983
        return train_sensor_epochs(
            model,
            self.source.X,
            self.embed(self.source_interpretations.texts),
            self.config.sensor_train_config(self.config.server_train_epochs, seed),
        )

    def targets_for(
        self, features: np.ndarray, context: SensorContext, windows: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Interpret a client's uploaded summaries (or raw windows in raw-prompt mode) into targets Z."""
        texts = self.interpreter.interpret(features, context, windows=windows)
        return self.embed(texts), texts

    def embed(self, texts: list[str]) -> np.ndarray:
        """Text-space embeddings of `texts`; only unseen texts are encoded (the encoder is frozen by now)."""
        missing = sorted(set(texts) - self._embeddings.keys())
        if missing:
            self._embeddings.update(zip(missing, self.encoder.encode(missing), strict=True))
        return np.stack([self._embeddings[text] for text in texts])

    def label_bank(self, labels: list[str]) -> LabelBank:
        return label_bank(self.encoder, self.descriptions, labels)
