"""The ``seqemb`` command line: :data:`app` (typer) and :func:`main`, the script's entry point.

- :mod:`~ui.cli.app` — the app, assembled from the command modules;
- :mod:`~ui.cli.options` — the options several commands share;
- :mod:`~ui.cli.demo`, :mod:`~ui.cli.embeddings`, :mod:`~ui.cli.runs`, :mod:`~ui.cli.recsys`,
  :mod:`~ui.cli.fraud`, :mod:`~ui.cli.dashboard` — the commands.
"""

from ui.cli.app import app, main

__all__ = ["app", "main"]
