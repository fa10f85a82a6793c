"""One small synthetic world, its step features and one trained autoencoder, shared by the fraud tests."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.synthetic import WorldConfig, make_world
from embeddings.vectors import Embeddings
from fraud.autoencoder import train_autoencoder
from fraud.config import AutoencoderConfig, TransactionSchema
from fraud.features import read_transactions, step_features

SCHEMA = TransactionSchema(label="is_fraud")
CONFIG = AutoencoderConfig(epochs=4, device="cpu")


@pytest.fixture(scope="session")
def world():
    return make_world(WorldConfig(seed=0).scaled(0.2))


@pytest.fixture(scope="session")
def vectors(world) -> Embeddings:
    """One-hot home region per merchant (as in test_features)."""
    m = world.merchants
    return Embeddings(
        m["merchant_id"].to_list(), np.eye(world.config.n_regions, dtype=np.float32)[m["region"].to_numpy()]
    )


@pytest.fixture(scope="session")
def source(world):
    """Transactions in time order, so a prefix of rows is the past and row numbers agree."""
    return world.transactions.sort("ts", maintain_order=True)


@pytest.fixture(scope="session")
def features(source, vectors):
    return step_features(read_transactions(source, SCHEMA), vectors)


@pytest.fixture(scope="session")
def model(features):
    return train_autoencoder(features, CONFIG)
