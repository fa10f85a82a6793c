"""The autoencoder trained by two DDP workers on the CPU (gloo) catches every planted kind, as one process does."""

from __future__ import annotations

import torch

from embeddings import ddp
from embeddings.launch import Launch
from fraud.autoencoder import score_steps, train_autoencoder
from tests.fraud.conftest import CONFIG
from tests.fraud.test_autoencoder import KINDS, _kind_aucs


def test_two_workers_rank_each_planted_kind_high(source, features):
    model = ddp.launch(Launch(nproc=2), train_autoencoder, features, CONFIG, device=torch.device("cpu"))
    kind = source["fraud_kind"].gather(features.frame["row"]).fill_null("genuine").to_numpy()
    aucs = _kind_aucs(kind, score_steps(model, features))
    assert min(aucs[k] for k in KINDS) >= 0.9, aucs
    # The raw amount, the best one-feature score, stays below 0.75 on its worst kind (test_autoencoder).
    amount = features.matrix[:, features.names.index("log_amount")]
    assert min(_kind_aucs(kind, amount)[k] for k in KINDS) < 0.75
