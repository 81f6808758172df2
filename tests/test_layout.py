"""The import table of STYLE.md: scoring imports nothing of ours, the service never imports torch."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_scoring_imports_nothing_of_ours() -> None:
    for path in (ROOT / "scoring").glob("*.py"):
        ours = {n for n in _imports(path) if n.split(".")[0] in ("models", "service")}
        internal = {n for n in _imports(path) if n.startswith("scoring")}
        assert not ours, f"{path.name} imports {ours}"
        assert path.name == "scores.py" or not internal or path.name == "__init__.py", path.name


def test_service_imports_only_torch_free_models_modules() -> None:
    allowed = {"models.spec", "models.predictions", "models.worker", "models.checkpoints", "models.lifeline"}  # lifeline: torch-free, ends worker trees
    for path in (ROOT / "service").rglob("*.py"):
        imported = _imports(path)
        assert "torch" not in imported and not any(n.startswith("torch.") for n in imported), path
        bad = {n for n in imported if n.startswith("models") and n not in allowed}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_importing_the_app_and_cli_leaves_torch_out() -> None:
    code = ("import sys, service.api.app, service.cli.main, service.engine.engine, service.engine.executors.local; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
