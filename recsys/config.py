"""The recommender's settings, stage by stage (encoder shape, optimisation, towers, re-ranker), and
what the training job reads (:func:`recsys.jobs.run_recommender`).

Plain frozen dataclasses checked on construction, in a module of their own so that the command
line reads the defaults without loading torch. Each model module documents how it uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embeddings.checks import check_choice, check_int, check_number
from embeddings.data import EventSchema
from embeddings.launch import Launch

RECOMMENDER_KIND = "recommender"  # the run kind (and model directory prefix) of a trained recommender
RECOMMEND_KIND = "recommend"  # the run kind of a batch of recommendations
LOSSES = ("full", "sampled")
MAX_K = 1000  # the most items one recommendation list holds
DEFAULT_K = 10


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the GRU session encoder. ``dim``: item and session vector width; ``hidden``: GRU
    width; ``temperature`` divides the cosine logits of next-item prediction."""

    dim: int = 100
    hidden: int = 100
    layers: int = 1
    dropout: float = 0.25
    temperature: float = 0.07

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "layers"):
            check_int(name, getattr(self, name))
        check_number("dropout", self.dropout, at_least=0, below=1)
        check_number("temperature", self.temperature, above=0)


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings. ``loss="sampled"`` draws ``negatives`` items per batch; the
    learning rate is multiplied by ``lr_decay`` after every epoch."""

    epochs: int = 10
    lr: float = 1e-3
    lr_decay: float = 1.0
    weight_decay: float = 0.0
    tokens_per_batch: int = 4096
    max_length: int = 50
    loss: str = "full"
    negatives: int = 2048
    proposal_power: float = 0.5
    clip: float = 5.0
    patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        for name in ("epochs", "negatives", "tokens_per_batch", "max_length"):
            check_int(name, getattr(self, name))
        check_int("patience", self.patience, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_number("lr", self.lr, above=0)
        check_number("clip", self.clip, above=0)
        check_number("lr_decay", self.lr_decay, above=0, at_most=1)
        check_number("weight_decay", self.weight_decay, at_least=0)
        check_number("proposal_power", self.proposal_power, at_least=0)


@dataclass(frozen=True)
class TowerConfig:
    """Output width of both towers, attribute embedding width, id dropout and temperature."""

    dim: int = 100
    attribute_dim: int = 16
    id_dropout: float = 0.1
    temperature: float = 0.07

    def __post_init__(self) -> None:
        check_int("dim", self.dim)
        check_int("attribute_dim", self.attribute_dim)
        check_number("id_dropout", self.id_dropout, at_least=0, below=1)
        check_number("temperature", self.temperature, above=0)


@dataclass(frozen=True)
class NeuMFConfig:
    """Hyper-parameters of :class:`~recsys.neumf.NeuMF` and :func:`~recsys.neumf.train_neumf`.

    ``dim`` is the width of the GMF and MLP user/item embeddings, ``mlp`` the widths of the ReLU
    tower (its input is ``2 * dim``), ``clip_norm`` the max global gradient norm per step.
    ``NeuMFConfig(**dataclasses.asdict(config))`` round-trips (also through JSON: lists become tuples).
    """

    dim: int = 64
    mlp: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    epochs: int = 3
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 512
    clip_norm: float = 5.0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.mlp, (list, tuple)):
            object.__setattr__(self, "mlp", tuple(self.mlp))
        if not isinstance(self.mlp, tuple) or not self.mlp:
            check_int("mlp", None, note=" (a non-empty list of layer widths)")
        for width in self.mlp:
            check_int("mlp width", width)
        for name in ("dim", "epochs", "batch_size"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_number("dropout", self.dropout, at_least=0, below=1)
        check_number("lr", self.lr, above=0)
        check_number("clip_norm", self.clip_norm, above=0)
        check_number("weight_decay", self.weight_decay, at_least=0)


@dataclass(frozen=True)
class RecommenderConfig:
    """Every stage's settings. ``neumf=None`` skips the re-ranker; ``exclude_seen``: the re-ranker
    is trained for recommendations that leave out the user's history (the Recommender's default)."""

    encoder: EncoderConfig = EncoderConfig()
    fit: FitConfig = FitConfig()
    tower: TowerConfig = TowerConfig()
    tower_fit: FitConfig = FitConfig(epochs=2)
    neumf: NeuMFConfig | None = NeuMFConfig()
    candidates: int = 100
    rerank_positions: int = 200_000
    exclude_seen: bool = True
    index_kind: str = "exact"
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("candidates", self.candidates)
        check_int("rerank_positions", self.rerank_positions)
        check_int("seed", self.seed, minimum=0)


def check_k(k: object) -> None:
    """Raise unless ``k`` (items per list) is an integer in ``[1, MAX_K]``."""
    check_int("k", k, maximum=MAX_K)


@dataclass
class RecommenderJob:
    """What to read and how to train.

    ``attributes``: a file (or SQL URL with ``attributes_table``) of item attributes whose id
    column is ``attribute_id`` (default: the events' item column), of which ``attribute_columns``
    are used (default: all); ``item_vectors``: an item2vec model directory whose vectors
    initialise the item embeddings; ``launch``: the training workers (several: DDP).
    """

    schema: EventSchema = field(default_factory=EventSchema)
    attributes: str | None = None
    attributes_table: str | None = None
    attribute_id: str | None = None
    attribute_columns: list[str] | None = None
    item_vectors: str | None = None
    config: RecommenderConfig = field(default_factory=RecommenderConfig)
    launch: Launch = field(default_factory=Launch)
