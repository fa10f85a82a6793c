"""The shape of the code base: imports point down, nothing imports itself back, and the command
line starts without loading the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("embeddings", "recsys", "fraud", "ui", "benchmarks")
# Which package may import which (DESIGN.md): ui -> recsys, fraud -> embeddings; benchmarks measure them all.
ALLOWED = {
    "embeddings": {"embeddings"},
    "recsys": {"recsys", "embeddings"},
    "fraud": {"fraud", "embeddings"},
    "ui": {"ui", "recsys", "fraud", "embeddings"},
    "benchmarks": {"benchmarks", "ui", "recsys", "fraud", "embeddings"},
}
HEAVY = ("torch", "gradio", "sklearn", "faiss", "numba")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module ``name`` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    targets = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    return {t for t in targets if t in modules and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down():
    wrong = [
        f"{source} imports {target}"
        for source, targets in _graph().items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    ]
    assert wrong == []


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """The checker itself: two modules that import each other are reported."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from a import x\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert _imports("a", modules["a"], modules) == {"b"}
    assert _imports("b", modules["b"], modules) == {"a"}


def test_the_command_line_starts_without_heavy_libraries():
    """``seqemb --help``, ``--version`` and ``runs`` import neither torch, gradio, scikit-learn, faiss nor numba."""
    code = (
        "import sys\n"
        "import ui.cli\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == ""


def test_the_dashboard_and_the_service_never_import_the_command_line():
    graph = _graph()
    leaks = [
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source.startswith(("ui.dashboard", "ui.service", "ui.demo"))
        for target in targets
        if target.startswith("ui.cli")
    ]
    assert leaks == []
