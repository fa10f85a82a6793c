"""The fraud models' settings: the transaction columns, the sequence autoencoder, the fraud model
around it, the semi-supervised classifier on top, and the jobs that train them (:mod:`fraud.jobs`).

Plain frozen dataclasses checked on construction, in a module of their own so that the command
line reads the defaults without loading torch or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embeddings.checks import check_choice, check_int, check_number
from embeddings.errors import ConfigError
from embeddings.launch import Launch

FRAUD_MODEL_KIND = "fraud_model"  # run kinds (and model directory prefixes) of the fraud jobs
SCORE_KIND = "score"
SEMI_MODEL_KIND = "semi_model"
CLASSIFIERS = ("forest", "boosted", "logistic")
DEFAULT_ALERT_THRESHOLD = 0.99  # calibrated score: about 1 in 100 genuine transactions raises an alert
DEFAULT_CHUNK_ENTITIES = 2000  # entities (with all their transactions) per scoring transaction


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyper-parameters of :class:`SequenceAutoencoder` and its training; defaults work."""

    hidden: int = 32  # GRU hidden size (per direction for the encoder)
    # Width of the window embedding z. Narrow on purpose: with 16 the decoder copies the last
    # step through (synthetic world: card-testing step AUC 0.69), with 4 every planted kind >= 0.93.
    bottleneck: int = 4
    layers: int = 1  # GRU layers in encoder and decoder
    bidirectional: bool = False  # bidirectional encoder (the window is all past steps: still causal)
    window: int = 8  # L: steps per window; the last L steps are reconstructed
    stride: int = 1  # training windows end at every stride-th step of an entity
    denoise: float = 0.0  # std of Gaussian noise added to standardised inputs in training
    dropout: float = 0.0  # on the encoder state before the bottleneck, and between GRU layers
    epochs: int = 8
    lr: float = 3e-3
    batch_size: int = 256  # windows per training batch
    # Windows per scoring batch. On CPU a batch whose GRU states stay in cache is cheapest: at one
    # thread 2048 took about 30 % less CPU time than 8192 (Fraud Handbook data, 200k windows).
    score_batch_size: int = 2048
    clip: float = 5.0  # max gradient norm
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("hidden", "bottleneck", "layers", "window", "stride", "epochs", "batch_size", "score_batch_size")
        for name in positive:
            check_int(f"autoencoder {name}", getattr(self, name))
        check_int("autoencoder seed", self.seed, minimum=0)
        check_number("autoencoder dropout", self.dropout, at_least=0, below=1)
        check_number("autoencoder denoise", self.denoise, at_least=0)
        check_number("autoencoder lr", self.lr, above=0)
        check_number("autoencoder clip", self.clip, above=0)


@dataclass(frozen=True)
class FraudModelConfig:
    """How to train: the autoencoder's config, the validation share of the time span and the
    optional transaction id column (else a transaction is named by its 0-based source row)."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    validation_fraction: float = 0.2
    transaction_id: str | None = None

    def __post_init__(self) -> None:
        check_number("validation_fraction", self.validation_fraction, above=0, below=1)
        if self.transaction_id is not None and (not isinstance(self.transaction_id, str) or not self.transaction_id):
            raise ConfigError(f"transaction_id must be a non-empty column name, got {self.transaction_id!r}")


@dataclass(frozen=True)
class SemiConfig:
    """Hyper-parameters of the semi-supervised model; defaults work."""

    classifier: str = "forest"  # "forest", "boosted" or "logistic"
    n_trees: int = 100  # forest: number of trees; boosted: most boosting rounds
    max_depth: int | None = None  # forest, boosted: None grows every tree until its leaves are pure (or max_leaf_nodes)
    min_samples_leaf: int | None = None  # forest, boosted; None: 1 for the forest, 20 for boosting
    seed: int = 0  # forest: bootstrap and split sampling; boosted: the early-stopping hold-out
    learning_rate: float = 0.1  # boosted: shrinkage of every round's tree
    max_leaf_nodes: int | None = 31  # boosted: leaves per tree (None: no limit)
    l2: float = 0.0  # boosted: L2 penalty on the leaf values
    early_stopping: bool = True  # boosted: stop when the loss on a 10% hold-out of the labelled steps stalls
    C: float = 1.0  # logistic: inverse L2 strength
    max_iter: int = 2000  # logistic
    class_weight: str | None = None  # "balanced" or None (both classifiers)
    use_embedding: bool = True  # include the bottleneck vector z_t
    use_history: bool = True  # include the window's largest earlier amount_ratio
    use_counterparty_labels: bool = False  # include the counterparty's known-label history (the caller supplies it)
    use_features: bool = True  # include the step's features x_t
    min_per_class: int = 1  # labelled steps needed of each class

    def __post_init__(self) -> None:
        check_choice("classifier", self.classifier, CLASSIFIERS)
        check_number("C", self.C, above=0)
        if self.class_weight not in ("balanced", None):
            raise ConfigError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        for name in ("max_iter", "min_per_class", "n_trees"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        if self.min_samples_leaf is not None:
            check_int("min_samples_leaf", self.min_samples_leaf, note=" (or None)")
        if self.max_depth is not None:
            check_int("max_depth", self.max_depth, note=" (or None)")
        if self.max_leaf_nodes is not None:
            check_int("max_leaf_nodes", self.max_leaf_nodes, minimum=2, note=" (or None)")
        check_number("learning_rate", self.learning_rate, above=0, at_most=1)
        check_number("l2", self.l2, at_least=0)


@dataclass(frozen=True)
class TransactionSchema:
    """Names of the caller's columns; ``category``, ``channel`` and ``label`` are optional.

    ``integer_ids``: the card and merchant ids are integers (text that is not one is an error);
    otherwise ids in CSV files are read as text and typed sources keep their column types.
    """

    entity: str = "card_id"
    counterparty: str = "merchant_id"
    amount: str = "amount"
    timestamp: str = "ts"
    category: str | None = None
    channel: str | None = None
    label: str | None = None
    # False: ids in text files are read as text, so "0081" and "81" stay two cards.
    integer_ids: bool = False

    def __post_init__(self) -> None:
        named = [self.entity, self.counterparty, self.amount, self.timestamp]
        names = named + [n for n in (self.category, self.channel, self.label) if n is not None]
        if any(not isinstance(n, str) or not n for n in names):
            raise ConfigError(f"transaction column names must be non-empty strings, got {names}")
        if len(set(names)) != len(names):
            raise ConfigError(f"transaction columns must be distinct, got {names}")

    def id_columns(self) -> list[str]:
        """The caller's id columns: read as text from CSV unless ``integer_ids``."""
        return [] if self.integer_ids else [self.entity, self.counterparty]

    def columns(self) -> dict[str, str]:
        """Canonical name -> caller's column name, for the columns this schema uses."""
        named = {
            "entity": self.entity,
            "counterparty": self.counterparty,
            "amount": self.amount,
            "ts": self.timestamp,
            "category": self.category,
            "channel": self.channel,
            "label": self.label,
        }
        return {canonical: column for canonical, column in named.items() if column is not None}


@dataclass
class FraudJob:
    """What ``seqemb train-fraud`` reads and how it trains; ``counterparty_vectors`` is an
    embedding model directory (item2vec / node2vec) whose vectors become counterparty features;
    ``analyst_labels`` keeps the store's confirmed frauds out of training; ``launch``: the
    training workers (several: DDP)."""

    schema: TransactionSchema = field(default_factory=TransactionSchema)
    config: FraudModelConfig = field(default_factory=FraudModelConfig)
    counterparty_vectors: str | None = None
    analyst_labels: bool = True
    launch: Launch = field(default_factory=Launch)


@dataclass
class SemiJob:
    """What ``seqemb train-semi`` trains on: the fraud model directory whose autoencoder feeds the
    semi-supervised model, and the classifier's settings."""

    fraud_model: str
    config: SemiConfig = field(default_factory=SemiConfig)
