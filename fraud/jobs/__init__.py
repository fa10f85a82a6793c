"""The fraud jobs (the runners of the design): :mod:`~fraud.jobs.training` for ``seqemb train-fraud``
and ``seqemb train-semi``, :mod:`~fraud.jobs.scoring` for ``seqemb score``."""

from fraud.jobs.scoring import score_batch
from fraud.jobs.training import run_train_fraud, run_train_semi, store_label_history

__all__ = ["run_train_fraud", "run_train_semi", "score_batch", "store_label_history"]
