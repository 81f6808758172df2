"""Optional API keys. With no key configured the server is open (it binds to loopback by
default); once any key exists, every endpoint but /health needs `Authorization: Bearer <key>`
and each key sees only the datasets and jobs it created (others get 404).

A browser signs in once at /ui/login with its key and gets a session cookie instead:
`v1.<owner>.<expires>.<signature>` (the key's owner id base64url, expires in Unix seconds), signed by
itsdangerous (`Signer`: HMAC-SHA256, compared in constant time) under a key derived from a server
secret kept in `<data_dir>/session.secret` (0600, 32 bytes) and, as the salt, the key's SHA-256.
The cookie holds no key; it dies with its expiry (checked here, whatever the browser does with
Max-Age), with its key (deleted or changed: no digest signs it any more), or with the secret
(delete the file to sign everyone out).
Requests that change state and carry only the cookie must come from the server's own pages
(`check_same_origin`: Origin, else Referer, against Host), on top of SameSite=Strict.
The keys table is read and written by service.store.keys; this module holds no SQL.
"""

import base64
import binascii
import hashlib
import os
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import Signer
from itsdangerous.encoding import base64_decode, base64_encode

from service.errors import CurationError
from service.fsutil import atomic_path
from service.settings import Settings
from service.store import keys as stored
from service.store.db import Store

SESSION_COOKIE = "curate_session"
SESSION_TTL_S = 12 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SECRET_BYTES = 32


class Unauthorized(CurationError):
    status_code = 401
    code = "unauthorized"


class CrossSiteRequest(CurationError):
    status_code = 403
    code = "cross_site_request"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _env_keys(settings: Settings) -> dict[str, tuple[str, str]]:
    """{sha256: (owner id, name)} of the keys in CURATE_API_KEYS ("name=key,name2=key2"). The owner
    id is `key:<first 16 hex of the key's sha256>`: stable for one key whatever its name, new for a
    new key under an old name (owning by name gave the new key the old one's datasets)."""
    out = {}
    for item in filter(None, (p.strip() for p in settings.api_keys.split(","))):
        name, sep, key = item.partition("=")
        if not sep or not name or len(key) < 16:
            raise ValueError(f"CURATE_API_KEYS entries must look like name=key with keys of 16+ characters, got {name!r}")
        out[_digest(key)] = (f"key:{_digest(key)[:16]}", name)
    return out


def create_key(store: Store, name: str) -> str:
    """A new random key for `name`; only its hash is stored, so print it now."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise CurationError(f"key name must be 1-64 letters, digits, - or _, got {name!r}")
    key = "cur_" + secrets.token_urlsafe(32)
    stored.add_key(store, name, _digest(key), f"{name}:{secrets.token_hex(6)}")
    return key


class KeyRing:
    """Resolves a bearer token or a session cookie to its owner id (None when auth is off): a stable
    id per key (`api_keys.key_id`; a key made before schema v3 keeps its name as id, so it keeps
    its data), never the bare name a later key could reuse."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.env = _env_keys(settings)
        self.secret_path = settings.data_dir / "session.secret"
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        # (generation, {sha256: (owner id, name)}) of api_keys
        self._stored: tuple[int, dict[str, tuple[str, str]]] | None = None

    def stored_keys(self) -> dict[str, tuple[str, str]]:
        """{sha256: (owner id, name)} of the keys in the data file, read again only after create_key."""
        generation = stored.generation(self.store)
        with self._lock:
            if self._stored is None or self._stored[0] != generation:
                self._stored = (generation, {k.key_sha256: (k.owner, k.name) for k in stored.list_keys(self.store)})
            return self._stored[1]

    def enabled(self) -> bool:
        return bool(self.env) or bool(self.stored_keys())

    def owner(self, authorization: str | None) -> str | None:
        if not self.enabled():
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>'")
        return self.authenticate(token.strip())[0]

    def authenticate(self, key: str) -> tuple[str, str]:
        """(owner id, sha256) of a key; Unauthorized if it is unknown."""
        digest = _digest(key)
        found = self.env.get(digest) or self.stored_keys().get(digest)
        if found is None:
            raise Unauthorized("unknown API key")
        return found[0], digest

    def name_of(self, owner: str | None) -> str | None:
        """The name a person gave the key with this owner id (what the dashboard shows); None when
        auth is off. The id itself if no key has it now (its requests are refused anyway)."""
        if owner is None:
            return None
        return next((name for keys in (self.env, self.stored_keys()) for o, name in keys.values() if o == owner),
                    owner)

    def _digests(self, owner: str) -> list[str]:
        """The SHA-256 of every key with this owner id now (an env key and a stored key may share it)."""
        return [d for keys in (self.env, self.stored_keys()) for d, (o, _) in keys.items() if o == owner]

    def secret(self) -> bytes:
        with self._lock:
            if self._secret is None:
                self._secret = load_session_secret(self.secret_path)
            return self._secret

    def create_session(self, key: str) -> str:
        """The session cookie value for a valid key (Unauthorized otherwise)."""
        owner, digest = self.authenticate(key)
        expires = int(time.time()) + SESSION_TTL_S
        return sign_session(self.secret(), owner, expires, digest)

    def session_owner(self, cookie: str) -> str:
        """The owner id of a valid, unexpired session cookie whose key still exists."""
        invalid = "invalid session cookie: sign in again at /ui/login"
        try:
            version, encoded, expires, signature = cookie.split(".")
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            expires_at = int(expires)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unauthorized(invalid) from None
        if version != "v1" or not any(_signer(self.secret(), d).validate(cookie) for d in self._digests(name)):
            raise Unauthorized(invalid)
        if not _canonical(signature):
            raise Unauthorized(invalid)
        if expires_at < time.time():
            raise Unauthorized("your session has expired: sign in again at /ui/login")
        return name


def sign_session(secret: bytes, owner: str, expires: int, key_sha256: str) -> str:
    """The cookie value `v1.<owner base64url>.<expires>.<signature>` for a key with this SHA-256.

    A plain `Signer` over a payload that carries its own expiry, not a `TimestampSigner` (which
    signs the issue time and checks `max_age` when read): the expiry is fixed when the cookie is
    made, the same instant as the Max-Age the browser was given, and the value keeps its v1 shape."""
    encoded = base64.urlsafe_b64encode(owner.encode()).decode().rstrip("=")
    return _signer(secret, key_sha256).sign(f"v1.{encoded}.{expires}").decode()


def _canonical(signature: str) -> bool:
    """Whether a valid signature is spelled as we issue it. Unpadded base64 of 32 bytes leaves 2 bits
    of its last character unused and itsdangerous decodes before it compares, so it accepts 4
    spellings of one signature; a session is one exact string (seen in a test that flipped the last
    character and got in about 1 time in 12)."""
    return base64_encode(base64_decode(signature)).decode() == signature


def _signer(secret: bytes, key_sha256: str) -> Signer:
    """Signs under a key derived (HMAC) from the server secret and the key's digest, so a cookie is
    valid for the key it was made for only, and no longer once that key is gone."""
    return Signer(secret, salt=f"curate-session.{key_sha256}", sep=".", key_derivation="hmac",
                  digest_method=hashlib.sha256)


def load_session_secret(path: Path) -> bytes:
    """The server's cookie-signing secret: SECRET_BYTES random bytes, created on first use, mode 0600."""
    if not path.exists():
        with atomic_path(path) as partial:  # 0600 from its first byte, never readable by others
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(secrets.token_bytes(SECRET_BYTES))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # copied with looser permissions: others must not read it
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise CurationError(f"{path} holds {len(secret)} bytes, not a session secret: delete it to make a new one")
    return secret


def check_same_origin(method: str, origin: str | None, referer: str | None, host: str | None) -> None:
    """A state-changing request authenticated by cookie must come from this server's own pages:
    its Origin (else its Referer) must name the host it was sent to."""
    if method.upper() in SAFE_METHODS:
        return
    source = origin if origin and origin != "null" else referer
    if not source:
        raise CrossSiteRequest(f"refused a {method} signed in by cookie without an Origin or Referer header: "
                               "send it from the dashboard, or use 'Authorization: Bearer <key>'")
    if not host or urlsplit(source).netloc.lower() != host.lower():
        raise CrossSiteRequest(f"refused a cross-site {method}: it came from {urlsplit(source).netloc or source!r}, "
                               f"not from this server ({host})")
