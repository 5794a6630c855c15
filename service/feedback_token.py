"""Prediction ids that carry their own prediction: HMAC-signed, stateless feedback tokens.

`POST /feedback {"id": token, "actual": y}` must work on any worker, replica or restart without
shared state, so the id itself carries what the feedback metrics need (prediction value, model
version, issue time) and an HMAC-SHA256 tag over it, keyed by MLAPI_FEEDBACK_KEY.

Wire format, then URL-safe base64 without padding (51 chars + 4/3 per byte of model version):

    format(1) | issued_at u32 (unix s) | prediction f64 | nonce(8) | len(1) | version | tag(16)

The tag is HMAC-SHA256 truncated to 128 bits (well above the 64-bit floor of NIST SP 800-107).
The nonce makes ids of equal predictions issued in the same second distinct. Tokens are not
secret (the prediction is in the response anyway) and not single-use: replaying one adds the same
feedback again, which max_age bounds; deduplication would need shared state.

Key handling: set MLAPI_FEEDBACK_KEY (>= 32 bytes) in every worker and replica, the same value
everywhere. Without it `resolve_keys` generates a random key and marks it ephemeral: ids then
verify only in the process that issued them, so the caller must log a warning; a pre-fork server
calls `share_generated_key` in its master so that at least its workers agree.
MLAPI_FEEDBACK_KEY_PREVIOUS keeps ids issued before a key rotation valid until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import os
import re
import secrets
import struct
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

KEY_ENV = "MLAPI_FEEDBACK_KEY"
PREVIOUS_KEY_ENV = "MLAPI_FEEDBACK_KEY_PREVIOUS"
MIN_KEY_BYTES = 32

_FORMAT = 1
_HEADER = struct.Struct(">BIdQB")  # format, issued_at, prediction, nonce, version length
_TAG_BYTES = 16
_NONCE_BYTES = 8
MAX_VERSION_BYTES = 64
# Longest valid token, with slack; anything longer is rejected before decoding.
MAX_TOKEN_CHARS = 4 * (_HEADER.size + MAX_VERSION_BYTES + _TAG_BYTES) // 3 + 4
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Tokens issued this far in the future (clock skew between replicas) are still accepted.
CLOCK_SKEW_S = 60

Reason = Literal["malformed", "bad_signature", "expired", "not_yet_valid"]


class InvalidFeedbackToken(ValueError):
    """Verification failed; `reason` is stable and safe to return to the client."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


@dataclass(frozen=True)
class PredictionClaim:
    """What a verified token says about the prediction it was issued for."""

    prediction: float
    model_version: str
    issued_at: int
    nonce: int


@dataclass(frozen=True)
class FeedbackKeys:
    """The signing key first, then keys still accepted; `ephemeral` = generated in-process."""

    keys: tuple[bytes, ...]
    ephemeral: bool


def resolve_keys(environ: Mapping[str, str]) -> FeedbackKeys:
    """Keys from the environment; a random ephemeral key when MLAPI_FEEDBACK_KEY is unset.

    A set but short key is a misconfiguration and raises instead of silently weakening the HMAC.
    """
    keys = []
    for name in (KEY_ENV, PREVIOUS_KEY_ENV):
        value = environ.get(name, "")
        if not value:
            continue
        key = value.encode()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"{name} must be at least {MIN_KEY_BYTES} bytes long")
        keys.append(key)
    if KEY_ENV not in environ or not environ[KEY_ENV]:
        return FeedbackKeys((os.urandom(MIN_KEY_BYTES), *keys), ephemeral=True)
    return FeedbackKeys(tuple(keys), ephemeral=False)


def share_generated_key(environ: MutableMapping[str, str]) -> bool:
    """For a pre-fork server's master: without MLAPI_FEEDBACK_KEY, put one random key into
    `environ` so every worker forked afterwards shares it. Ids then survive worker recycling, not
    a restart nor another replica. True when a key was generated: the caller logs a warning.
    """
    if environ.get(KEY_ENV):
        return False
    environ[KEY_ENV] = secrets.token_urlsafe(MIN_KEY_BYTES)
    return True


class FeedbackSigner:
    """Signs prediction ids and verifies them; safe to share between threads (no mutable state)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) < MIN_KEY_BYTES for k in keys):
            raise ValueError(f"need at least one key of >= {MIN_KEY_BYTES} bytes")
        self._keys = tuple(keys)

    def sign(self, prediction: float, model_version: str, issued_at: int) -> str:
        """One token; for a batch use sign_many (one urandom call for all nonces)."""
        return self.sign_many([prediction], model_version, issued_at)[0]

    def sign_many(
        self, predictions: Sequence[float], model_version: str, issued_at: int
    ) -> list[str]:
        version = model_version.encode()
        if not 0 < len(version) <= MAX_VERSION_BYTES:
            raise ValueError(f"model_version must be 1..{MAX_VERSION_BYTES} bytes")
        if not 0 <= issued_at < 2**32:
            raise ValueError("issued_at must fit in an unsigned 32-bit unix time")
        if not all(map(math.isfinite, predictions)):
            raise ValueError("predictions must be finite")
        nonces = struct.unpack(f">{len(predictions)}Q", os.urandom(_NONCE_BYTES * len(predictions)))
        key = self._keys[0]
        tokens = []
        for prediction, nonce in zip(predictions, nonces, strict=True):
            body = _HEADER.pack(_FORMAT, issued_at, prediction, nonce, len(version)) + version
            raw = body + hmac.digest(key, body, "sha256")[:_TAG_BYTES]
            tokens.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"))
        return tokens

    def verify(
        self,
        token: object,
        now: float,
        max_age_s: float,
    ) -> PredictionClaim:
        """The claim inside `token`, or InvalidFeedbackToken with the first failing check.

        Order: shape, signature (constant-time), then time, so nothing unauthenticated is
        interpreted beyond its length. Any signed model version is accepted: feedback on an
        older version is still ground truth for that version's metrics.
        """
        raw = _decode(token)
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not any(
            hmac.compare_digest(hmac.digest(key, body, "sha256")[:_TAG_BYTES], tag)
            for key in self._keys
        ):
            raise InvalidFeedbackToken("bad_signature")
        fmt, issued_at, prediction, nonce, version_len = _HEADER.unpack_from(body)
        if fmt != _FORMAT or len(body) != _HEADER.size + version_len:
            raise InvalidFeedbackToken("malformed")
        try:
            model_version = body[_HEADER.size :].decode()
        except UnicodeDecodeError:
            raise InvalidFeedbackToken("malformed") from None
        if issued_at > now + CLOCK_SKEW_S:
            raise InvalidFeedbackToken("not_yet_valid")
        if now - issued_at > max_age_s:
            raise InvalidFeedbackToken("expired")
        return PredictionClaim(prediction, model_version, issued_at, nonce)


def _decode(token: object) -> bytes:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise InvalidFeedbackToken("malformed")
    if not _TOKEN_CHARS.fullmatch(token):
        raise InvalidFeedbackToken("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidFeedbackToken("malformed") from None
    # One token string per byte string: reject non-canonical trailing bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise InvalidFeedbackToken("malformed")
    if len(raw) < _HEADER.size + 1 + _TAG_BYTES:
        raise InvalidFeedbackToken("malformed")
    return raw
