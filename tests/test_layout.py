"""The import table of STYLE.md: scoring imports nothing of ours, the service never imports torch."""

import ast
import re
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
        internal = {n for n in _imports(path) if n.startswith("scoring") and n != "scoring.ranks"}  # numpy helpers
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
    code = ("import sys, service.app, service.cli.main, service.engine.engine, service.engine.executors.local; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- service/ by stage: which package may import which (README "Architecture") -----------------
FOUNDATION = {"settings", "errors", "schemas", "limits", "fsutil", "vocab", "result_cache", "app_info",
              "__init__"}  # top-level modules every stage may use; they import no stage
STAGES = ("ingest", "store", "engine", "read", "api", "web", "app", "cli")  # service/app.py composes api + web
MAY_IMPORT = {
    "foundation": set(),
    "ingest": set(),
    "store": {"ingest"},
    "engine": {"ingest", "store"},  # never read, api, web: it calls on_succeeded hooks instead
    "read": {"ingest", "store"},
    "api": {"ingest", "store", "engine", "read"},
    "web": {"ingest", "store", "engine", "read", "api"},
    "app": {"ingest", "store", "engine", "read", "api", "web"},
    "cli": {"ingest", "store", "engine", "read", "api", "web", "app"},
}


def _stage_of_path(path: Path, root: Path) -> str:
    parts = path.relative_to(root / "service").parts
    if len(parts) == 1:
        name = path.stem
        if name in ("app", "__main__"):  # the composition root; `python -m service` runs the CLI
            return "cli" if name == "__main__" else "app"
        assert name in FOUNDATION, f"service/{path.name}: a new top-level module; put it in a stage package"
        return "foundation"
    return parts[0]


def _stage_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "service" or len(parts) == 1:
        return None
    if parts[1] in FOUNDATION:
        return "foundation"
    return parts[1]


def import_violations(root: Path = ROOT) -> list[str]:
    """Every import in service/ against the stage directions, as 'file imports module'."""
    found = []
    for path in sorted((root / "service").rglob("*.py")):
        stage = _stage_of_path(path, root)
        for module in _imports(path):
            target = _stage_of_module(module)
            if target is None or target == stage or target == "foundation":
                continue
            if target not in MAY_IMPORT[stage]:
                found.append(f"{path.relative_to(root)} imports {module}")
    return found


def test_service_imports_follow_the_stage_directions() -> None:
    assert import_violations() == []


def test_the_direction_check_fails_on_a_backward_import(tmp_path) -> None:
    """Prove the check can fail: a copy of service/ where the engine imports the read stage."""
    import shutil

    shutil.copytree(ROOT / "service", tmp_path / "service")
    scheduler = tmp_path / "service" / "engine" / "scheduler.py"
    scheduler.write_text("from service.read import queries\n" + scheduler.read_text())
    assert import_violations(tmp_path) == ["service/engine/scheduler.py imports service.read"]


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b",
                 re.DOTALL)  # our SQL is written in capitals; prose is not


def _string_constants(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_sql_lives_only_in_store_and_read() -> None:
    offenders = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        if path.relative_to(ROOT / "service").parts[0] in ("store", "read"):
            continue
        offenders += [f"{path.relative_to(ROOT)}: {s.strip()[:60]!r}" for s in _string_constants(path)
                      if SQL.search(s)]
    assert offenders == []


def test_the_sql_check_finds_sql() -> None:
    assert SQL.search("SELECT job_id FROM jobs WHERE status = ?") and SQL.search("DELETE FROM reviews")
    assert not SQL.search("select the examples from the job")  # prose: no keyword pair in SQL's form


def test_readme_architecture_names_every_stage_package() -> None:
    """The README's package picture and the tree agree: every package it names exists, every
    package that exists is named."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"service/([a-z_]+)/", section))
    actual = {p.name for p in (ROOT / "service").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert named == actual, f"README names {sorted(named)}, the tree has {sorted(actual)}"
    for path in re.findall(r"`(service/[a-z_/]+\.py)`", section):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
