"""The README stays true to the code: every setting, CLI command and endpoint is documented;
every CurationError maps to the one error shape."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.api.auth
import service.read.diff
import service.read.exports
import service.read.queries
import service.store.db
import service.store.reviews
import service.store.versions
from service.app import create_app
from service.cli.main import app as cli_app
from service.errors import CurationError
from service.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for name in Settings.model_fields:
        assert f"`{name}`" in README, name


def test_every_cli_command_is_in_the_readme() -> None:
    commands = [c.name or c.callback.__name__ for c in cli_app.registered_commands]
    assert len(commands) >= 8
    for name in commands:
        assert f"curate {name}" in README, name
    for group in cli_app.registered_groups:
        for c in group.typer_instance.registered_commands:
            assert f"curate {group.name} {c.name}" in README


def test_every_route_is_in_the_readme(tmp_path: Path) -> None:
    api = create_app(Settings(data_dir=tmp_path))
    for route in api.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/openapi", "/docs", "/redoc")):
            continue
        documented = re.sub(r"\{[a-z_]+\}", "{id}", path).replace("{id}/examples/{id}", "{id}/examples/{example_id}")
        assert documented in README or path in README, path


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


@pytest.mark.parametrize("error", [CurationError, *_all_subclasses(CurationError)], ids=lambda e: e.__name__)
def test_every_curation_error_maps_to_the_error_shape(tmp_path: Path, error: type[CurationError]) -> None:
    api = create_app(Settings(data_dir=tmp_path))

    @api.get("/boom")
    def boom() -> None:
        raise error("something named went wrong")

    with TestClient(api) as client:
        r = client.get("/boom")
    assert r.status_code == error.status_code
    assert r.json() == {"error": {"code": error.code, "message": "something named went wrong"}}
    assert 400 <= error.status_code < 500


_ = (service.api.auth, service.read.diff, service.read.exports, service.read.queries, service.store.reviews, service.store.db,
     service.store.versions)  # import every module defining errors
