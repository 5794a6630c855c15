"""The secrets the service reads from its environment, validated once and never echoed.

- Bearer tokens (``MLAPI_AUTH_TOKENS``, comma-separated, or ``MLAPI_AUTH_TOKENS_FILE``, one per
  line; blank lines and ``#`` comments ignored: a Docker or Kubernetes secret), never both. Empty:
  auth is off. A token never leaves this module in text: problems name the variable and the
  token's position, ``repr``/``str`` show only the count.
- Feedback keys: ``MLAPI_FEEDBACK_KEY`` signs prediction ids (service/api/prediction_ids.py) and
  ``MLAPI_FEEDBACK_KEY_PREVIOUS`` keeps ids signed before a rotation valid. Both >= 32 bytes; the
  same on every worker and replica, else feedback sent to another one is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

TOKENS_ENV = "MLAPI_AUTH_TOKENS"
TOKENS_FILE_ENV = "MLAPI_AUTH_TOKENS_FILE"
MIN_TOKEN_CHARS = 16
# RFC 6750 b64token: what a Bearer header can carry. It also excludes whitespace, the comma that
# separates MLAPI_AUTH_TOKENS and the `#` that starts a comment in the file.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True)
class AuthTokens:
    """The accepted bearer tokens; empty means auth is off. Construction validates every token."""

    values: tuple[str, ...] = ()
    # SHA-256 of each token: comparing fixed-length digests leaks no token's length.
    _digests: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for position, token in enumerate(self.values, start=1):
            if len(token) < MIN_TOKEN_CHARS or not _B64TOKEN.fullmatch(token):
                raise ValueError(
                    f"token {position} of {len(self.values)} must be >= {MIN_TOKEN_CHARS} "
                    "characters of A-Z a-z 0-9 - . _ ~ + / (then optional = padding); "
                    "value not shown"
                )
        object.__setattr__(self, "_digests", tuple(_digest(token) for token in self.values))

    def __repr__(self) -> str:
        return f"AuthTokens(<{len(self.values)} tokens>)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.values)

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is one of the tokens. Compares against every token without an
        early exit, in constant time per comparison, so timing reveals neither which one matched
        nor how much of one did."""
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these tokens in a child process: inline, so a secret file
        is read once, by the process that started the server."""
        return {TOKENS_ENV: ",".join(self.values), TOKENS_FILE_ENV: ""}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def tokens_from_env(env: Mapping[str, str]) -> AuthTokens:
    """The tokens the two variables configure (unset or empty: none). Raises ValueError with one
    line that names the variable and never holds a token."""
    inline = env.get(TOKENS_ENV, "").strip()
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if inline and path:
        raise ValueError(f"{TOKENS_ENV} and {TOKENS_FILE_ENV} are both set; set one")
    if path:
        return _tokens(TOKENS_FILE_ENV, _read_token_file(Path(path).expanduser()))
    if inline:
        parts = (part.strip() for part in inline.split(","))
        return _tokens(TOKENS_ENV, [part for part in parts if part])
    return AuthTokens()


def _read_token_file(path: Path) -> list[str]:
    where = f"{TOKENS_FILE_ENV}={str(path)!r}"
    try:
        # utf-8-sig: a byte-order mark from a Windows editor is not part of the first token.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        # Its message would quote the file's bytes.
        raise ValueError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{where}: cannot read: {exc.strerror or type(exc).__name__}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _tokens(variable: str, values: list[str]) -> AuthTokens:
    # A set variable that yields no token must not quietly leave the API open.
    if not values:
        raise ValueError(f"{variable}: set but holds no token")
    try:
        return AuthTokens(tuple(values))
    except ValueError as exc:
        raise ValueError(f"{variable}: {exc}") from None


FEEDBACK_KEY_ENV = "MLAPI_FEEDBACK_KEY"
PREVIOUS_FEEDBACK_KEY_ENV = "MLAPI_FEEDBACK_KEY_PREVIOUS"
MIN_FEEDBACK_KEY_BYTES = 32


@dataclass(frozen=True)
class FeedbackKeys:
    """The key that signs prediction ids and one still accepted from before a rotation; None
    where the variable is unset."""

    current: bytes | None = None
    previous: bytes | None = None

    def __repr__(self) -> str:
        return f"FeedbackKeys(current={_shown(self.current)}, previous={_shown(self.previous)})"

    __str__ = __repr__

    def to_env(self) -> dict[str, str]:
        return {
            name: key.decode() if key else ""
            for name, key in (
                (FEEDBACK_KEY_ENV, self.current),
                (PREVIOUS_FEEDBACK_KEY_ENV, self.previous),
            )
        }


def _shown(key: bytes | None) -> str:
    return "unset" if key is None else "<set>"


def feedback_keys_from_env(env: Mapping[str, str]) -> FeedbackKeys:
    """The configured keys. A set but short key raises ValueError (naming the variable, never the
    value) instead of silently weakening the HMAC."""
    keys: list[bytes | None] = []
    for name in (FEEDBACK_KEY_ENV, PREVIOUS_FEEDBACK_KEY_ENV):
        key = env.get(name, "").encode()
        if key and len(key) < MIN_FEEDBACK_KEY_BYTES:
            raise ValueError(f"{name} must be at least {MIN_FEEDBACK_KEY_BYTES} bytes long")
        keys.append(key or None)
    return FeedbackKeys(*keys)


def generated_feedback_key() -> bytes:
    """A random key for a server started without MLAPI_FEEDBACK_KEY (see share_generated_key)."""
    return secrets.token_urlsafe(MIN_FEEDBACK_KEY_BYTES).encode()


def share_generated_key(environ: MutableMapping[str, str]) -> bool:
    """For a pre-fork server's master: without MLAPI_FEEDBACK_KEY, put one random key into
    `environ` so every worker forked afterwards shares it. Ids then survive worker recycling, not
    a restart nor another replica. True when a key was generated: the caller logs a warning."""
    if environ.get(FEEDBACK_KEY_ENV):
        return False
    environ[FEEDBACK_KEY_ENV] = generated_feedback_key().decode()
    return True
