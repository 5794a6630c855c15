"""Prediction ids: one MAC-signed token per predicted row, carrying its own prediction.

`POST /feedback {"id": token, "actual": y}` must work on any worker, replica or restart without
shared state, so the id itself carries what the feedback metrics need (prediction value, model
version, issue time) and a MAC over it, keyed by MLAPI_FEEDBACK_KEY.

Wire format, then URL-safe base64 without padding (51 chars + 4/3 per byte of model version):

    format(1) | issued_at u32 (unix s) | prediction f64 | nonce(8) | len(1) | version | tag(16)

Format 2 (issued now): the tag is keyed BLAKE2b with a 128-bit digest (RFC 7693's MAC mode; one
C call, about six times cheaper than HMAC-SHA256, which a 1,000-row response pays 1,000 times).
Format 1 (issued before): HMAC-SHA256 truncated to 128 bits; still verified, so ids issued before
an upgrade keep working until they expire. Both tags are far above the 64-bit floor of NIST
SP 800-107.
The nonce makes ids of equal predictions issued in the same second distinct. Tokens are not
secret (the prediction is in the response anyway) and not single-use: replaying one adds the same
feedback again, which max_age bounds; deduplication would need shared state.

Keys (service/credentials.py): MLAPI_FEEDBACK_KEY (>= 32 bytes), the same value in every worker
and replica; MLAPI_FEEDBACK_KEY_PREVIOUS keeps ids issued before a rotation valid until they
expire. Without MLAPI_FEEDBACK_KEY a pre-fork server generates one in its master
(credentials.share_generated_key) so that at least its workers agree; a process on its own signs
with a random key of its own. Either way the operator is warned (`warn_generated_key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from service.credentials import FEEDBACK_KEY_ENV, MIN_FEEDBACK_KEY_BYTES, FeedbackKeys
from service.model.card import MAX_VERSION_BYTES

logger = logging.getLogger(__name__)

_HMAC_SHA256 = 1
_BLAKE2B = 2
# BLAKE2b takes keys of up to 64 bytes: a MAC key is derived from MLAPI_FEEDBACK_KEY.
_BLAKE2B_KEY_PERSON = b"mlapi-ids"
_HEADER = struct.Struct(">BIdQB")  # format, issued_at, prediction, nonce, version length
_TAG_BYTES = 16
_NONCE_BYTES = 8
# Longest valid token, with slack; anything longer is rejected before decoding.
MAX_ID_CHARS = 4 * (_HEADER.size + MAX_VERSION_BYTES + _TAG_BYTES) // 3 + 4
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Tokens issued this far in the future (clock skew between replicas) are still accepted.
CLOCK_SKEW_S = 60

Reason = Literal["malformed", "bad_signature", "expired", "not_yet_valid"]


class InvalidPredictionId(ValueError):
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


class PredictionIds:
    """Issues prediction ids and verifies them; safe to share between threads (no mutable state)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) < MIN_FEEDBACK_KEY_BYTES for k in keys):
            raise ValueError(f"need at least one key of >= {MIN_FEEDBACK_KEY_BYTES} bytes")
        self._keys = tuple(keys)
        self._blake2b_keys = tuple(
            hashlib.blake2b(key, digest_size=64, person=_BLAKE2B_KEY_PERSON).digest()
            for key in keys
        )

    def issue(self, predictions: Sequence[float], model_version: str, issued_at: int) -> list[str]:
        """One id per prediction, in row order, carrying it, the model version and `issued_at`."""
        version = model_version.encode()
        if not 0 < len(version) <= MAX_VERSION_BYTES:
            raise ValueError(f"model_version must be 1..{MAX_VERSION_BYTES} bytes")
        if not 0 <= issued_at < 2**32:
            raise ValueError("issued_at must fit in an unsigned 32-bit unix time")
        if not all(map(math.isfinite, predictions)):
            raise ValueError("predictions must be finite")
        nonces = struct.unpack(f">{len(predictions)}Q", os.urandom(_NONCE_BYTES * len(predictions)))
        key = self._blake2b_keys[0]
        pack, blake2b, encode = _HEADER.pack, hashlib.blake2b, base64.urlsafe_b64encode
        tokens = []
        for prediction, nonce in zip(predictions, nonces, strict=True):
            body = pack(_BLAKE2B, issued_at, prediction, nonce, len(version)) + version
            raw = body + blake2b(body, key=key, digest_size=_TAG_BYTES).digest()
            tokens.append(encode(raw).rstrip(b"=").decode("ascii"))
        return tokens

    def verify(
        self,
        token: object,
        now: float,
        max_age_s: float,
    ) -> PredictionClaim:
        """The claim inside `token`, or InvalidPredictionId with the first failing check.

        Order: shape, signature (constant-time), then time, so nothing unauthenticated is
        interpreted beyond its length. Any signed model version is accepted: feedback on an
        older version is still ground truth for that version's metrics.
        """
        raw = _decode(token)
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        signed_as = {
            fmt for fmt, expected in self._tags(body) if hmac.compare_digest(expected, tag)
        }
        if not signed_as:
            raise InvalidPredictionId("bad_signature")
        fmt, issued_at, prediction, nonce, version_len = _HEADER.unpack_from(body)
        if fmt not in signed_as or len(body) != _HEADER.size + version_len:
            raise InvalidPredictionId("malformed")
        try:
            model_version = body[_HEADER.size :].decode()
        except UnicodeDecodeError:
            raise InvalidPredictionId("malformed") from None
        if issued_at > now + CLOCK_SKEW_S:
            raise InvalidPredictionId("not_yet_valid")
        if now - issued_at > max_age_s:
            raise InvalidPredictionId("expired")
        return PredictionClaim(prediction, model_version, issued_at, nonce)

    def _tags(self, body: bytes) -> Iterator[tuple[int, bytes]]:
        """(format, tag) of `body` under every accepted key and both formats: which one the
        id claims is read only once a tag matched."""
        for blake2b_key, key in zip(self._blake2b_keys, self._keys, strict=True):
            yield _BLAKE2B, hashlib.blake2b(body, key=blake2b_key, digest_size=_TAG_BYTES).digest()
            yield _HMAC_SHA256, hmac.digest(key, body, "sha256")[:_TAG_BYTES]


def _decode(token: object) -> bytes:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_ID_CHARS:
        raise InvalidPredictionId("malformed")
    if not _TOKEN_CHARS.fullmatch(token):
        raise InvalidPredictionId("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidPredictionId("malformed") from None
    # One token string per byte string: reject non-canonical trailing bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise InvalidPredictionId("malformed")
    if len(raw) < _HEADER.size + 1 + _TAG_BYTES:
        raise InvalidPredictionId("malformed")
    return raw


def prediction_ids_for(keys: FeedbackKeys) -> PredictionIds:
    """Ids signed with MLAPI_FEEDBACK_KEY, accepting MLAPI_FEEDBACK_KEY_PREVIOUS too. Without a
    key, a random one of this process, with the warning."""
    current = keys.current
    if current is None:
        current = os.urandom(MIN_FEEDBACK_KEY_BYTES)
        warn_generated_key("this process")
    return PredictionIds([current, *([keys.previous] if keys.previous else [])])


def warn_generated_key(holders: str) -> None:
    """The one warning for ids signed with a generated key (`holders`: who shares it)."""
    logger.warning(
        "%s is not set: prediction ids are signed with a random key of %s, so feedback works "
        "only there and only until a restart; set the same key (>= %d bytes) on every worker and "
        "replica",
        FEEDBACK_KEY_ENV,
        holders,
        MIN_FEEDBACK_KEY_BYTES,
    )
