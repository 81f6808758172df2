"""API keys in `api_keys`: a name, the key's SHA-256 (never the key) and a stable owner id.

The owner id is `api_keys.key_id`; a key made before schema v3 has none and keeps its name as its
id, so it keeps its data. Every write goes through `add_key`, which bumps this data file's key
generation: a reader (service.api.auth.KeyRing) keeps the table in memory and reads it again only
when the generation moves. Keys are only ever added by the process that holds the DuckDB file (the
server, or the CLI when no server runs), so a process-wide counter sees every change; reading the
table on every request was 15-17 % of the server's time under load (benchmarks/results/api_load.md).
"""

from dataclasses import dataclass

from service.errors import CurationError
from service.store.db import Store

_GENERATION: dict[str, int] = {}  # str(store.path) -> writes to its api_keys so far (in this process)


@dataclass(frozen=True)
class StoredKey:
    key_sha256: str
    owner: str  # the id data is owned by: key_id, or the name of a key from before schema v3
    name: str  # what the person who made it called it (shown in the dashboard's header)


def add_key(store: Store, name: str, key_sha256: str, key_id: str) -> None:
    """Stores a new key; a CurationError naming it if a key of that name exists already."""
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM api_keys WHERE name = ?", [name]).fetchone():
            raise CurationError(f"an API key named {name!r} exists already")
        cur.execute("INSERT INTO api_keys (name, key_sha256, created_at, key_id) VALUES (?, ?, now(), ?)",
                    [name, key_sha256, key_id])
    _GENERATION[str(store.path)] = generation(store) + 1


def list_keys(store: Store) -> list[StoredKey]:
    """Every stored key (the CURATE_API_KEYS ones live in the settings, not here)."""
    with store.reader() as cur:
        rows = cur.execute("SELECT key_sha256, coalesce(key_id, name), name FROM api_keys").fetchall()
    return [StoredKey(digest, owner, name) for digest, owner, name in rows]


def generation(store: Store) -> int:
    """How many keys this process has added to this data file: a cache of list_keys is stale when it moves."""
    return _GENERATION.get(str(store.path), 0)
