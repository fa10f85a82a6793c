"""Where seqemb keeps its files.

``SEQEMB_HOME`` (default ``~/.seqemb``) holds the SQLite store and the model
directories; ``SEQEMB_DB_URL`` points the store at any SQLAlchemy URL instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def seqemb_home() -> Path:
    """The directory for the default store and saved models (created on demand)."""
    home = Path(os.environ.get("SEQEMB_HOME", Path.home() / ".seqemb")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_db_url() -> str:
    """``SEQEMB_DB_URL`` when set, else a SQLite file inside :func:`seqemb_home`."""
    url = os.environ.get("SEQEMB_DB_URL")
    if url:
        return url
    return f"sqlite:///{seqemb_home() / 'seqemb.sqlite'}"


def models_dir(create: bool = True) -> Path:
    """The directory under :func:`seqemb_home` where trained models are saved (made unless ``create`` is False)."""
    path = seqemb_home() / "models"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
