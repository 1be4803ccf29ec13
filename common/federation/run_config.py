"""The federated run's configuration: one typed, validated view of Flower's flat kebab-case run config.

Flower run configs are flat dicts of int/float/bool/str (no lists), set in `[tool.flwr.app.config]` of
pyproject.toml (which declares exactly these keys and defaults) and overridden with `flwr run . --run-config`.
Server and clients read them through `FederationConfig.from_run_config`: a typo or a wrong type fails before
any work starts, naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from common.base.device import DeviceError, resolve_device
from common.federation.secagg import STAGES as SECAGG_STAGES
from common.federation.secagg import check_neighbourhood
from common.method.train import SensorTrainConfig
from common.models.sensor_encoder import INPUT_FRAMES, SensorEncoderConfig

STRATEGIES = ("fedavg", "fedprox", "fedadam")
DP_MODES = ("none", "central", "local")
INTERPRETERS = ("rules", "openai", "local")
PARTITIONINGS = ("by-user", "iid", "dirichlet")
CLIENT_EVALS = ("held-out-users", "time")
UPDATE_COMPRESSIONS = ("none", "int8", "sparse-int8")
CLIENT_SAMPLINGS = ("fixed", "poisson")


# Why SecAgg+ refuses update-compression (int8 and sparse-int8 alike).
SECAGG_COMPRESSION_REASON = (
    "int8 codes are scaled per client and per tensor, so a masked sum of codes is no code of the sum, "
    "and sparse-int8 sends each client's own top-k coordinates; SecAgg+ already quantises every update "
    "onto one shared grid (secagg-clipping-range, secagg-quantization-range), and a masked coordinate "
    "takes the 32 bits of the 2**32 modulus whatever its quantisation (the masks are uniform on it), so "
    "int8 would save nothing on the uplink. Lower secagg-quantization-range for coarser quantisation"
)


class ConfigError(ValueError):
    """A run-config key is unknown, has the wrong type, or an impossible value."""


def _fail(key: str, why: str) -> NoReturn:
    raise ConfigError(f"run config: key '{key}' {why}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(key, f"must be one of {choices}, got '{value}'")


def split_list(value: str) -> list[str]:
    """Run configs cannot hold lists: they are comma-separated strings. Empty string = empty list."""
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class FederationConfig:
    # --- run ---------------------------------------------------------------------------------------
    num_server_rounds: int = 4
    seed: int = 0
    # Absolute path; "" = ~/fedlanhar-runs/<timestamp> (the ServerApp's cwd is not the repo).
    out_dir: str = ""
    data_dir: str = ""  # absolute path holding the npz data sets; "" only allowed with synthetic data
    # --- server (cloud) ----------------------------------------------------------------------------
    source: str = "synthetic"  # labeled source data set held by the server: "synthetic" or a data set name
    source_device: str = "waist_phone"  # device type of the synthetic source data
    source_windows_per_activity: int = 120
    activities: str = "walking,upstairs,downstairs,sitting"  # initial label set (comma-separated)
    new_activities: str = "jogging,cycling"  # labels pushed to clients at `new-activities-round`
    new_activities_round: int = 3
    interpreter: str = "rules"
    llm_base_url: str = ""  # for interpreter = "openai"
    llm_model: str = ""
    llm_api_key_env: str = "OPENAI_API_KEY"
    text_encoder: str = "minilm"  # name or directory of a BERT-family checkpoint
    text_encoder_path: str = ""  # a stage-1 artifact directory (skips stage-1 training when set)
    # A directory of trained text spaces (common/method/text_space_cache.py): a run whose stage-1 inputs match
    # an earlier run's loads its text encoder instead of training it, with the same results. "" = off.
    text_space_cache: str = ""
    stage1_steps: int = 30
    stage1_batch_size: int = 32
    server_pretrain_epochs: int = 8  # stage 2 on the server's own source windows before the rounds
    # Epochs the server also trains on its source windows every round, aggregated as one more participant
    # weighted by its window count (as central stage 2 trains on both). 0 = only pre-train. Not with DP.
    server_train_epochs: int = 0
    # Share of a real source's users the server leaves out of its training, drawn as central draws its source
    # validation users (0.2: the users `fedlanhar train` trains on). 0 = every source user trains.
    source_eval_users_fraction: float = 0.0
    sensor_width: int = 0  # sensor encoder d_model; 0 = the text encoder's width (the paper's choice)
    sensor_input_frame: str = "gravity"  # "gravity" (rotation invariant) or "device" (SensorEncoderConfig)
    # The window's signal analysis as one more sensor-encoder token (SensorEncoderConfig.analysis_token); each
    # client computes it from its own windows, as it does for its uploaded summaries.
    sensor_analysis_token: bool = True
    # Every party turns its own windows into each wearer's walking frame (CentralConfig.walking_frame), no
    # label read; the rules texts and analysis token then read the body inclination. Needs interpreter rules.
    walking_frame: bool = False
    # Where the server's and the clients' models run: "auto" (CUDA when present), "cpu", "cuda", "cuda:N".
    # Simulated clients see a GPU only with client-resources-num-gpus > 0 in the federation config.
    device: str = "auto"
    send_target_text: bool = False  # also send the interpretation texts back to clients
    raw_prompt_mode: bool = False  # the paper's mode: clients upload RAW windows for the LLM prompt
    # --- clients -----------------------------------------------------------------------------------
    # "synthetic" or comma-separated data set names split across clients; "synthetic:<device type>" entries
    # add synthetic clients of that device type (see common/federation/mixed.py).
    clients_data: str = "synthetic"
    # > 0: every user of every real set in clients-data (but the server's source users) becomes this many
    # clients, synthetic entries fill the other partitions. 0: a set's clients share it by `partitioning`.
    clients_per_user: int = 0
    # User layout: at most this many training and this many held-out users of each real set become clients
    # (the first ones of the split); 0 = all. For short runs and tests.
    users_per_data_set: int = 0
    device_types: str = "waist_phone,trouser_pocket_phone,wrist_watch,chest_strap"  # assigned round-robin
    windows_per_client: int = 0  # synthetic clients: windows per client; 0 = the device type's `windows`
    partitioning: str = "by-user"  # real data: by-user, iid or dirichlet label skew
    dirichlet_alpha: float = 0.5
    # How clients are scored (common/federation/partition.py): "held-out-users" (real data: users split as
    # central splits its target) or "time" (each recording's last client-eval-fraction evaluates).
    client_eval: str = "held-out-users"
    eval_users_fraction: float = 0.5  # client-eval = held-out-users: share of users held out (central's 0.5)
    client_eval_fraction: float = 0.3  # client-eval = time: held-out share of each recording's windows
    local_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-4
    temperature: float = 0.07
    # --- aggregation -------------------------------------------------------------------------------
    strategy: str = "fedavg"
    proximal_mu: float = 0.01
    server_learning_rate: float = 0.05  # FedAdam's eta
    fraction_train: float = 1.0
    client_sampling: str = "fixed"  # "fixed" (fraction-train) or "poisson" (each w.p. sampling-probability)
    sampling_probability: float = 1.0  # client-sampling "poisson": q, a client's chance to train in a round
    fraction_evaluate: float = 1.0  # share of clients that evaluate each round (all of them in the last)
    # The last round scores every evaluating client (true) or a fraction-evaluate sample like the others
    # (false: at 10,000 clients scoring all of them dominates the run).
    final_round_evaluate_all: bool = True
    # Set a client up (summaries -> targets, label bank) only when it is first sampled (server/enrolment.py):
    # for very many clients. The round-0 and last evaluations then score a fraction-evaluate sample too.
    lazy_enrolment: bool = False
    min_train_nodes: int = 2
    # Clip every client update (its change of the global model) to this multiple of the round's median update
    # norm before aggregating: one outlier device cannot drag the model. 0 = off.
    update_clip_factor: float = 0.0
    # Lean updates both ways (common/federation/compression.py): "none" (float32 weights), "int8" (4x
    # smaller), "sparse-int8" (the largest update-topk-fraction of each update, int8 + a bit mask: 12x at
    # 0.2), with error feedback; a client gets the whole model (float16) once, then only the steps since.
    update_compression: str = "none"
    update_topk_fraction: float = 0.2
    # Clients train and exchange only the top N transformer layers of the sensor encoder and the output
    # projection; the lower layers stay as the server pre-trained them. 0 = the whole model.
    client_train_layers: int = 0
    min_available_nodes: int = 2
    round_timeout: float = 600.0
    # --- faults and checkpoints --------------------------------------------------------------------
    min_replies_fraction: float = 0.5  # a round aggregates only if this share of its clients replied
    failure_rate: float = 0.0  # injected: probability that a client fails a train/evaluate message
    checkpoint: bool = True  # save server state after every round into <out-dir>/checkpoint
    resume: bool = False  # continue from <out-dir>/checkpoint
    crash_after_round: int = 0  # injected: the server stops abruptly after this round (0 = never)
    # --- privacy -----------------------------------------------------------------------------------
    dp_mode: str = "none"  # "central": client-side clipping + server noise; "local": clients add noise
    dp_clipping_norm: float = 1.0  # L2 bound of a client's model update
    dp_noise_multiplier: float = 1.0  # central DP: noise std = multiplier x clipping norm / clients
    dp_epsilon: float = 10.0  # local DP budget per release
    dp_delta: float = 1e-5
    # Central DP noise is drawn from fresh OS entropy each round (server/dp_noise.py): the run seed reaches
    # every client, so noise drawn from it could be subtracted. true = seeded from the run seed, for studies
    # that must replay a run exactly; metrics.json then marks the epsilon as not a guarantee.
    dp_reproducible_noise: bool = False
    summary_noise: float = 0.0  # Gaussian noise on uploaded summaries, std relative to each value (not DP)
    # SecAgg+ on the training rounds (common/federation/secagg.py): the server learns only the sum of the
    # updates. Secrets are shared with `secagg-num-shares` ring neighbours (itself included), any
    # `secagg-reconstruction-threshold` of which rebuild them; updates are clipped per coordinate to
    # +-secagg-clipping-range and quantised to secagg-quantization-range levels.
    secagg: bool = False
    secagg_num_shares: int = 7
    secagg_reconstruction_threshold: int = 4
    secagg_clipping_range: float = 1.0
    secagg_quantization_range: int = 4194304  # 2**22: sums of up to 1024 clients fit the 2**32 modulus
    # Injected dropouts for robustness studies: "<partition>:<stage>,..." (stage: setup, share-keys, collect,
    # unmask); that client stops answering at that stage of every secure round (client/secagg.py).
    secagg_drop: str = ""
    # Local interpretation: rules-interpreter clients interpret their own windows and upload only the set of
    # distinct interpretation texts (no per-window data); the server answers with their embeddings.
    interpret_on_client: bool = False

    @classmethod
    def keys(cls) -> dict[str, Any]:
        """Kebab-case key -> default, as declared in pyproject.toml."""
        return {f.name.replace("_", "-"): f.default for f in fields(cls)}

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> FederationConfig:
        known = {f.name.replace("_", "-"): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            if key not in known:
                raise ConfigError(f"run config: unknown key '{key}'; known keys: {', '.join(sorted(known))}")
            field = known[key]
            expected = type(field.default)
            # TOML writes 3 for 3.0; accept ints for float keys, nothing else silently.
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(
                    f"run config: key '{key}' must be {expected.__name__}, "
                    f"got {type(value).__name__} ({value!r})"
                )
            values[field.name] = value
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the first key with an impossible value or combination."""
        self._check_run()
        self._check_clients()
        self._check_training()
        self._check_paths_and_device()
        self._check_privacy()
        self._check_sampling()
        self._check_faults()
        self._check_updates()
        self._check_secagg()
        self._check_interpretation()

    def _check_run(self) -> None:
        """Rounds, strategy, interpreter and the activities with their push round."""
        if self.num_server_rounds < 1:
            _fail("num-server-rounds", f"must be >= 1, got {self.num_server_rounds}")
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("interpreter", self.interpreter, INTERPRETERS)
        if not self.activity_list:
            _fail("activities", "must name at least one activity")
        overlap = set(self.activity_list) & set(self.new_activity_list)
        if overlap:
            _fail("new-activities", f"repeats initial activities {sorted(overlap)}")
        if self.new_activity_list and not 1 <= self.new_activities_round <= self.num_server_rounds:
            _fail(
                "new-activities-round",
                f"must be within 1..num-server-rounds, got {self.new_activities_round}",
            )

    def _check_clients(self) -> None:
        """How the data becomes clients, how they are scored and how many take part in a round."""
        _check_choice("partitioning", self.partitioning, PARTITIONINGS)
        _check_choice("client-eval", self.client_eval, CLIENT_EVALS)
        if not 0.0 < self.eval_users_fraction < 1.0:
            _fail("eval-users-fraction", f"must be in (0, 1), got {self.eval_users_fraction}")
        if not 0.0 <= self.source_eval_users_fraction < 1.0:
            _fail("source-eval-users-fraction", f"must be in [0, 1), got {self.source_eval_users_fraction}")
        if self.source_eval_users_fraction > 0 and self.source == "synthetic":
            _fail("source-eval-users-fraction", "applies to a real source data set, not 'synthetic'")
        if not 0.0 < self.client_eval_fraction < 1.0:
            _fail("client-eval-fraction", f"must be in (0, 1), got {self.client_eval_fraction}")
        if not 0.0 < self.fraction_train <= 1.0:
            _fail("fraction-train", f"must be in (0, 1], got {self.fraction_train}")
        if not 0.0 < self.fraction_evaluate <= 1.0:
            _fail("fraction-evaluate", f"must be in (0, 1], got {self.fraction_evaluate}")
        if self.windows_per_client < 0:
            _fail("windows-per-client", f"must be >= 0 (0 = per device type), got {self.windows_per_client}")
        if self.clients_per_user < 0:
            _fail("clients-per-user", f"must be >= 0, got {self.clients_per_user}")
        if self.users_per_data_set < 0:
            _fail("users-per-data-set", f"must be >= 0 (0 = all), got {self.users_per_data_set}")
        if not self.device_type_list:
            _fail("device-types", "must name at least one device type")

    def _check_training(self) -> None:
        """The sensor encoder's input, the server's own training and the batch and epoch counts."""
        if self.sensor_width < 0 or (self.sensor_width and self.sensor_width % 2):
            _fail(
                "sensor-width", f"must be 0 (text encoder width) or an even number, got {self.sensor_width}"
            )
        if self.sensor_input_frame not in INPUT_FRAMES:
            _fail(
                "sensor-input-frame", f"must be one of {list(INPUT_FRAMES)}, not {self.sensor_input_frame!r}"
            )
        if self.server_train_epochs < 0:
            _fail("server-train-epochs", f"must be >= 0, got {self.server_train_epochs}")
        if self.server_train_epochs > 0 and self.dp_mode != "none":
            _fail(
                "server-train-epochs",
                f"must be 0 with dp-mode '{self.dp_mode}': the server's own update would not be clipped",
            )
        for key in ("local-epochs", "batch-size", "min-train-nodes", "stage1-batch-size"):
            if getattr(self, key.replace("-", "_")) < 1:
                _fail(key, "must be >= 1")

    def _check_paths_and_device(self) -> None:
        """Data and output directories (absolute: the ServerApp runs elsewhere) and the torch device."""
        real_clients = any(e.partition(":")[0] != "synthetic" for e in self.clients_data_list)
        needs_files = self.source != "synthetic" or real_clients
        if needs_files and not self.data_dir:
            _fail("data-dir", "must be set (absolute path) when source or clients-data name real data sets")
        if self.data_dir and not Path(self.data_dir).is_absolute():
            _fail(
                "data-dir", f"must be an absolute path (the ServerApp runs elsewhere), got '{self.data_dir}'"
            )
        if self.out_dir and not Path(self.out_dir).is_absolute():
            _fail("out-dir", f"must be an absolute path (the ServerApp runs elsewhere), got '{self.out_dir}'")
        try:
            resolve_device(self.device)
        except DeviceError as error:
            _fail("device", str(error))

    def _check_privacy(self) -> None:
        """Differential privacy and the noise on uploaded summaries."""
        _check_choice("dp-mode", self.dp_mode, DP_MODES)
        for key in ("dp-clipping-norm", "dp-noise-multiplier", "dp-epsilon"):
            if getattr(self, key.replace("-", "_")) <= 0:
                _fail(key, "must be > 0")
        if not 0.0 < self.dp_delta < 1.0:
            _fail("dp-delta", f"must be in (0, 1), got {self.dp_delta}")
        if self.dp_reproducible_noise and self.dp_mode != "central":
            # Only the server's central noise has a seed to choose; local DP noise is drawn on the device.
            _fail("dp-reproducible-noise", f"applies to dp-mode 'central' only, got dp-mode '{self.dp_mode}'")
        if self.summary_noise < 0:
            _fail("summary-noise", f"must be >= 0, got {self.summary_noise}")
        if self.lazy_enrolment and self.dp_mode != "none" and not (self.secagg and self.dp_mode == "central"):
            # Flower's DP wrappers need a fixed sample size a round; a lazily enrolled round drops the
            # evaluation-only clients it draws. The SecAgg+ path noises and accounts each round's own sample.
            _fail(
                "lazy-enrolment",
                f"must be false with dp-mode '{self.dp_mode}' unless dp-mode is 'central' with secagg "
                "(Flower's DP wrappers need the same number of clients every round)",
            )

    def _check_sampling(self) -> None:
        """Fixed or Poisson client sampling, and what Poisson sampling cannot be combined with yet."""
        _check_choice("client-sampling", self.client_sampling, CLIENT_SAMPLINGS)
        if not 0.0 < self.sampling_probability <= 1.0:
            _fail("sampling-probability", f"must be in (0, 1], got {self.sampling_probability}")
        if self.client_sampling == "fixed":
            if self.sampling_probability != 1.0:
                _fail(
                    "sampling-probability",
                    "applies to client-sampling 'poisson' only (fixed: fraction-train)",
                )
            return
        if self.fraction_train != 1.0:
            _fail("fraction-train", "applies to client-sampling 'fixed' only (poisson: sampling-probability)")
        if self.lazy_enrolment:
            # DP-FedAvg divides by q N, N the training clients: lazy enrolment learns who trains only as it
            # meets the clients, and samples a fixed number of them.
            _fail(
                "client-sampling",
                "'poisson' cannot be combined with lazy-enrolment (it samples a fixed number, and learns "
                "which clients train only when it meets them)",
            )
        if self.dp_mode == "central" and self.strategy == "fedadam":
            _fail(
                "client-sampling",
                "'poisson' with dp-mode 'central' needs strategy 'fedavg' or 'fedprox' (DP-FedAvg's average)",
            )

    def _check_faults(self) -> None:
        """Injected failures and how many replies a round needs."""
        if not 0.0 <= self.failure_rate < 1.0:
            _fail("failure-rate", f"must be in [0, 1), got {self.failure_rate}")
        if not 0.0 < self.min_replies_fraction <= 1.0:
            _fail("min-replies-fraction", f"must be in (0, 1], got {self.min_replies_fraction}")
        if self.crash_after_round < 0:
            _fail("crash-after-round", f"must be >= 0, got {self.crash_after_round}")

    def _check_updates(self) -> None:
        """Clipping, compression and the trained layers of the clients' model updates."""
        if self.update_clip_factor < 0:
            _fail("update-clip-factor", f"must be >= 0 (0 = off), got {self.update_clip_factor}")
        if self.update_clip_factor > 0 and self.dp_mode == "central":
            # The round's median norm depends on every client: one client joining or leaving rescales all
            # the others' updates, so the sum's sensitivity is no longer the clipping norm the noise assumes.
            _fail("update-clip-factor", "must be 0 with dp-mode 'central': it breaks the DP sensitivity")
        _check_choice("update-compression", self.update_compression, UPDATE_COMPRESSIONS)
        if not 0.0 < self.update_topk_fraction <= 1.0:
            _fail("update-topk-fraction", f"must be in (0, 1], got {self.update_topk_fraction}")
        if not 0 <= self.client_train_layers <= SensorEncoderConfig().num_layers:
            _fail(
                "client-train-layers",
                f"must be 0 (all) to {SensorEncoderConfig().num_layers} (the encoder's layers), "
                f"got {self.client_train_layers}",
            )
        if self.client_train_layers and self.dp_mode == "local":
            _fail(
                "client-train-layers",
                "must be 0 with dp-mode 'local': Flower's LocalDpMod works on the whole model",
            )
        if self.client_train_layers and self.dp_mode == "central" and not self.secagg:
            _fail(
                "client-train-layers",
                "must be 0 with dp-mode 'central' unless secagg is on: Flower's DP wrappers clip and noise "
                "the whole model (the SecAgg+ path clips and noises the trained tensors only)",
            )
        if self.update_compression != "none" and self.dp_mode != "none":
            _fail(
                "update-compression",
                f"must be 'none' with dp-mode '{self.dp_mode}': DP clips and noises full-precision weights",
            )

    def _check_secagg(self) -> None:
        """SecAgg+: what it cannot be combined with, and its sharing and quantisation parameters."""
        # SecAgg+ shows the server only the masked sum: per-client steps on the server are impossible.
        for other_key, is_set, why in (
            ("update-compression", self.update_compression != "none", SECAGG_COMPRESSION_REASON),
            ("update-clip-factor", self.update_clip_factor > 0, "the server never sees one update"),
        ):
            if self.secagg and is_set:
                _fail("secagg", f"cannot be combined with {other_key}: {why}")
        self._check_secagg_faults()
        if self.secagg_num_shares < 3:
            _fail("secagg-num-shares", f"must be >= 3, got {self.secagg_num_shares}")
        if not 2 <= self.secagg_reconstruction_threshold <= self.secagg_num_shares:
            _fail(
                "secagg-reconstruction-threshold",
                f"must be within 2..secagg-num-shares ({self.secagg_num_shares}), "
                f"got {self.secagg_reconstruction_threshold}",
            )
        check_neighbourhood(self.secagg_num_shares, self.secagg_reconstruction_threshold, ConfigError)
        if self.secagg_clipping_range <= 0:
            _fail("secagg-clipping-range", f"must be > 0, got {self.secagg_clipping_range}")
        if not 2 <= self.secagg_quantization_range < 2**31:
            _fail(
                "secagg-quantization-range",
                f"must be within 2..2**31-1, got {self.secagg_quantization_range}",
            )

    def _check_secagg_faults(self) -> None:
        """The injected dropouts."""
        if self.secagg_drop and not self.secagg:
            _fail("secagg-drop", "applies to secagg = true only")
        seen = set()
        for entry in split_list(self.secagg_drop):
            partition, _, stage = entry.partition(":")
            if not partition.isdigit() or stage not in SECAGG_STAGES:
                _fail(
                    "secagg-drop",
                    f"entries must be '<partition>:<stage>' with a stage of {SECAGG_STAGES}, got '{entry}'",
                )
            if int(partition) in seen:
                _fail("secagg-drop", f"names partition {partition} twice (a client drops out once a round)")
            seen.add(int(partition))

    def _check_interpretation(self) -> None:
        """The walking frame and interpreting on the client, which both need the rules interpreter."""
        if self.walking_frame and (
            self.interpreter != "rules"
            or self.raw_prompt_mode
            or self.sensor_input_frame != "gravity"
            or not self.sensor_analysis_token
        ):
            _fail(
                "walking-frame",
                "needs interpreter 'rules' (it words the inclination), no raw-prompt-mode, "
                "sensor-input-frame 'gravity' and sensor-analysis-token (which reads the inclination); got "
                f"interpreter '{self.interpreter}', raw-prompt-mode {self.raw_prompt_mode}, "
                f"sensor-input-frame '{self.sensor_input_frame}', "
                f"sensor-analysis-token {self.sensor_analysis_token}",
            )
        if self.interpret_on_client:
            if self.interpreter != "rules":
                _fail(
                    "interpret-on-client",
                    f"needs interpreter 'rules', got '{self.interpreter}': an LLM interpreter runs on the "
                    "server, so the client's summaries would have to leave it (set it to false)",
                )
            if self.raw_prompt_mode:
                _fail("interpret-on-client", "contradicts raw-prompt-mode (which uploads raw windows)")
            if self.summary_noise > 0:
                _fail(
                    "interpret-on-client",
                    "makes summary-noise pointless (no summary is uploaded): set it to 0",
                )

    @property
    def activity_list(self) -> list[str]:
        return split_list(self.activities)

    @property
    def new_activity_list(self) -> list[str]:
        return split_list(self.new_activities)

    @property
    def all_activities(self) -> list[str]:
        return self.activity_list + self.new_activity_list

    @property
    def secagg_drop_plan(self) -> dict[int, str]:
        """secagg-drop as partition id -> the stage that client stops answering at."""
        plan = {}
        for entry in split_list(self.secagg_drop):
            partition, _, stage = entry.partition(":")
            plan[int(partition)] = stage
        return plan

    @property
    def device_type_list(self) -> list[str]:
        return split_list(self.device_types)

    @property
    def clients_data_list(self) -> list[str]:
        return split_list(self.clients_data)

    def sensor_train_config(self, epochs: int, seed: int) -> SensorTrainConfig:
        """The stage-2 settings of every sensor-encoder training in the run (the server's pre-training and
        rounds, each client's local epochs): one place, so that a stage-2 setting reaches all of them."""
        return SensorTrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            temperature=self.temperature,
            seed=seed,
        )

    def as_dict(self) -> dict[str, Any]:
        """Kebab-case dict of every value: what metrics.json records as the run's config."""
        return {key.replace("_", "-"): value for key, value in dataclasses.asdict(self).items()}
