"""Optional API keys. With no key configured the server is open (it binds to loopback by
default); once any key exists, every endpoint but /health needs `Authorization: Bearer <key>`
and each key sees only the datasets and jobs it created (others get 404)."""

import hashlib
import secrets

from service.errors import CurationError
from service.settings import Settings
from service.store import Store


class Unauthorized(CurationError):
    status_code = 401
    code = "unauthorized"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _env_keys(settings: Settings) -> dict[str, str]:
    """{sha256: name} of the keys in CURATE_API_KEYS ("name=key,name2=key2")."""
    out = {}
    for item in filter(None, (p.strip() for p in settings.api_keys.split(","))):
        name, sep, key = item.partition("=")
        if not sep or not name or len(key) < 16:
            raise ValueError(f"CURATE_API_KEYS entries must look like name=key with keys of 16+ characters, got {name!r}")
        out[_digest(key)] = name
    return out


def create_key(store: Store, name: str) -> str:
    """A new random key for `name`; only its hash is stored, so print it now."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise CurationError(f"key name must be 1-64 letters, digits, - or _, got {name!r}")
    key = "cur_" + secrets.token_urlsafe(32)
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM api_keys WHERE name = ?", [name]).fetchone():
            raise CurationError(f"an API key named {name!r} exists already")
        cur.execute("INSERT INTO api_keys VALUES (?, ?, now())", [name, _digest(key)])
    return key


class KeyRing:
    """Resolves a bearer token to its owner name (None when auth is off)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.env = _env_keys(settings)

    def enabled(self) -> bool:
        if self.env:
            return True
        with self.store.reader() as cur:
            return cur.execute("SELECT count(*) FROM api_keys").fetchone()[0] > 0

    def owner(self, authorization: str | None) -> str | None:
        if not self.enabled():
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>'")
        digest = _digest(token.strip())
        if digest in self.env:
            return self.env[digest]
        with self.store.reader() as cur:
            row = cur.execute("SELECT name FROM api_keys WHERE key_sha256 = ?", [digest]).fetchone()
        if row is None:
            raise Unauthorized("unknown API key")
        return row[0]
