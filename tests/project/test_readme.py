"""Every tour command of the README works as written, in order, from the folder it tells to use.

The commands are read from the README's bash blocks, from ``seqemb demo --export`` on (what
comes before needs the full demo, which ``tests/ui/test_cli.py`` runs). The long-running
servers (``seqemb serve``, ``seqemb ui``) are left out: their own tests start and stop them.
Before ``train-semi`` the test labels a few alerts, as the README says an analyst does first.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embeddings.errors import SeqembError
from embeddings.store import Store
from fraud.labels import record_label
from ui.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
SERVERS = ("serve", "ui")


def tour_commands() -> list[list[str]]:
    """The ``seqemb`` commands of the README's bash blocks from the export on (up to the production
    section), as argument lists."""
    # The production section's commands name a server and files of the user's, not the tour's.
    tour = README.read_text(encoding="utf-8").split("\n## In production")[0]
    blocks = re.findall(r"```bash\n(.*?)```", tour, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "." and len(words) == 2:  # activating the venv
                continue
            words = [w for w in words if "=" not in w or w.startswith("-")] if words else words
            if words and words[0] == "seqemb":
                commands.append(words[1:])
    start = next(i for i, c in enumerate(commands) if c[:2] == ["demo", "--export"])
    return [c for c in commands[start:] if c[0] not in SERVERS]


def test_the_readme_tour_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    commands = tour_commands()
    assert [c[0] for c in commands][:4] == ["demo", "item2vec", "node2vec", "train-recommender"]
    monkeypatch.chdir(tmp_path)
    for args in commands:
        if args[0] == "train-semi":
            store = Store()
            alerts = store.read("alerts", columns=["alert_id", "txn_id", "card_id"]).head(6)
            for i, alert in enumerate(alerts.iter_rows(named=True)):
                label = "fraud" if i % 2 else "genuine"
                record_label(store, **alert, label=label, analyst="ann")
        result = CliRunner().invoke(app, args)
        if isinstance(result.exception, SeqembError):
            pytest.fail(f"seqemb {shlex.join(args)}: error: {result.exception}")
        assert result.exit_code == 0, f"seqemb {shlex.join(args)}:\n{result.output}"
        if args[:2] == ["demo", "--export"]:
            monkeypatch.chdir(tmp_path / "tour")  # the README's `cd tour`
