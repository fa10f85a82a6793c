"""Checks of embedding quality against known labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embeddings.index import VectorIndex


def neighbour_agreement(index: VectorIndex, labels: Mapping[Any, Any], k: int = 10) -> float:
    """Share of each labelled key's ``k`` nearest neighbours that carry the same label.

    ``labels`` maps keys (those in ``index``; others are ignored) to a class such as a
    planted cluster. 1.0 means every neighbour list stays inside its class; a random
    embedding scores about the size of a class over the number of keys.
    """
    keys = [key for key in index.keys if key in labels]
    if not keys:
        raise ValueError("no labelled key is in the index")
    found, _ = index.search_keys(keys, k)
    query_labels = np.array([labels[key] for key in keys], dtype=object)
    neighbour_labels = np.vectorize(lambda key: labels.get(key), otypes=[object])(found)
    return float(np.mean(neighbour_labels == query_labels[:, None]))
