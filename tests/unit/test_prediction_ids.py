from __future__ import annotations

import base64
import hmac
import math
import struct

import numpy as np
import pytest

from service.api.prediction_ids import (
    CLOCK_SKEW_S,
    MAX_ID_CHARS,
    InvalidPredictionId,
    PredictionIds,
    prediction_ids_for,
)
from service.credentials import (
    MIN_FEEDBACK_KEY_BYTES,
    FeedbackKeys,
    feedback_keys_from_env,
    share_generated_key,
)

KEY = b"k" * MIN_FEEDBACK_KEY_BYTES
OTHER_KEY = b"o" * MIN_FEEDBACK_KEY_BYTES
NOW = 1_795_000_000
DAY = 86_400


@pytest.fixture
def signer() -> PredictionIds:
    return PredictionIds([KEY])


def sign(ids: PredictionIds, prediction: float, version: str, issued_at: int) -> str:
    return ids.issue([prediction], version, issued_at)[0]


def reason(signer: PredictionIds, token: object, now: float = NOW) -> str:
    with pytest.raises(InvalidPredictionId) as error:
        signer.verify(token, now, DAY)
    return error.value.reason


def raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip_keeps_the_exact_prediction(signer: PredictionIds) -> None:
    token = sign(signer, 21.123456789012345, "housing-20261126", NOW - 10)
    claim = signer.verify(token, NOW, DAY)
    assert claim.prediction == 21.123456789012345
    assert claim.model_version == "housing-20261126"
    assert claim.issued_at == NOW - 10


def test_tokens_are_compact_and_url_safe(signer: PredictionIds) -> None:
    token = sign(signer, 50.0, "v1", NOW)
    assert len(token) <= 60
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_equal_predictions_get_distinct_ids(signer: PredictionIds) -> None:
    tokens = signer.issue([22.5] * 1000, "v1", NOW)
    assert len(set(tokens)) == 1000
    assert {signer.verify(t, NOW, DAY).prediction for t in tokens} == {22.5}


def test_numpy_floats_are_accepted(signer: PredictionIds) -> None:
    predictions = np.array([1.5, 2.5], dtype=np.float32)
    token = signer.issue(predictions, "v1", NOW)[1]
    assert signer.verify(token, NOW, DAY).prediction == 2.5


def test_wrong_key_is_a_bad_signature(signer: PredictionIds) -> None:
    token = sign(PredictionIds([OTHER_KEY]), 20.0, "v1", NOW)
    assert reason(signer, token) == "bad_signature"


def test_forged_token_is_a_bad_signature(signer: PredictionIds) -> None:
    genuine = raw(sign(signer, 20.0, "v1", NOW))
    forged = bytes(genuine[:-16]) + bytes(16)
    assert reason(signer, encode(forged)) == "bad_signature"


@pytest.mark.parametrize("position", [0, 1, 5, 12, 20, 22, -17, -1])
def test_any_flipped_byte_is_rejected(signer: PredictionIds, position: int) -> None:
    tampered = raw(sign(signer, 20.0, "v1", NOW))
    tampered[position] ^= 0x01
    assert reason(signer, encode(bytes(tampered))) == "bad_signature"


def test_truncated_token_is_rejected(signer: PredictionIds) -> None:
    token = sign(signer, 20.0, "housing-v1", NOW)
    # Still long enough to hold a header and a tag: the signature check catches it.
    assert reason(signer, token[:-4]) == "bad_signature"
    assert reason(signer, token[:20]) == "malformed"


def test_expired_and_future_tokens(signer: PredictionIds) -> None:
    token = sign(signer, 20.0, "v1", NOW)
    assert signer.verify(token, NOW + DAY, DAY).issued_at == NOW
    assert reason(signer, token, now=NOW + DAY + 1) == "expired"
    assert signer.verify(token, NOW - CLOCK_SKEW_S, DAY).issued_at == NOW
    assert reason(signer, token, now=NOW - CLOCK_SKEW_S - 1) == "not_yet_valid"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!",
        "abc=",
        "a",
        "a" * 5,
        "ÄÖÜ" * 20,
        "A" * (MAX_ID_CHARS + 1),
        "x" * 10_000_000,
        None,
        12345,
        b"bytes-are-not-tokens",
    ],
)
def test_malformed_input_is_rejected_cheaply(signer: PredictionIds, token: object) -> None:
    assert reason(signer, token) == "malformed"


def test_non_canonical_base64_is_malformed(signer: PredictionIds) -> None:
    token = sign(signer, 20.0, "v1", NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # Same decoded bytes, different unused trailing bits: only one spelling may verify.
    variants = [token[:-1] + c for c in alphabet if c != token[-1]]
    same_bytes = [v for v in variants if raw(v) == raw(token)]
    assert same_bytes
    assert {reason(signer, v) for v in same_bytes} == {"malformed"}


def test_rotated_key_still_verifies_old_tokens() -> None:
    old = sign(PredictionIds([OTHER_KEY]), 20.0, "v1", NOW)
    rotated = PredictionIds([KEY, OTHER_KEY])
    assert rotated.verify(old, NOW, DAY).prediction == 20.0
    new = sign(rotated, 1.0, "v1", NOW)
    assert rotated.verify(new, NOW, DAY).prediction == 1.0
    assert reason(PredictionIds([OTHER_KEY]), new) == "bad_signature"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([math.nan], "v1", NOW), "finite"),
        (([math.inf], "v1", NOW), "finite"),
        (([1.0], "", NOW), "model_version"),
        (([1.0], "v" * 65, NOW), "model_version"),
        (([1.0], "v1", -1), "issued_at"),
        (([1.0], "v1", 2**32), "issued_at"),
    ],
)
def test_sign_refuses_what_it_could_not_verify(
    signer: PredictionIds, args: tuple, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        signer.issue(*args)


def test_keys_from_environment() -> None:
    configured = feedback_keys_from_env(
        {"MLAPI_FEEDBACK_KEY": "s" * 32, "MLAPI_FEEDBACK_KEY_PREVIOUS": "p" * 40}
    )
    assert configured == FeedbackKeys(b"s" * 32, b"p" * 40)
    assert "s" * 32 not in repr(configured)


def test_without_a_key_each_process_signs_with_a_random_one(caplog) -> None:
    first, second = prediction_ids_for(FeedbackKeys()), prediction_ids_for(FeedbackKeys())
    token = sign(first, 20.0, "v1", NOW)
    assert reason(second, token) == "bad_signature"
    assert first.verify(token, NOW, DAY).prediction == 20.0
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "MLAPI_FEEDBACK_KEY is not set"
    ] * 2


def test_short_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="MLAPI_FEEDBACK_KEY"):
        feedback_keys_from_env({"MLAPI_FEEDBACK_KEY": "too-short"})
    with pytest.raises(ValueError, match="MLAPI_FEEDBACK_KEY_PREVIOUS"):
        feedback_keys_from_env({"MLAPI_FEEDBACK_KEY": "c" * 40, "MLAPI_FEEDBACK_KEY_PREVIOUS": "x"})
    with pytest.raises(ValueError):
        PredictionIds([b"short"])
    with pytest.raises(ValueError):
        PredictionIds([])


def test_master_shares_one_generated_key_with_its_workers() -> None:
    environ: dict[str, str] = {}
    assert share_generated_key(environ) is True
    worker_a = prediction_ids_for(feedback_keys_from_env(dict(environ)))
    worker_b = prediction_ids_for(feedback_keys_from_env(dict(environ)))
    token = sign(worker_a, 20.0, "v1", NOW)
    assert worker_b.verify(token, NOW, DAY).prediction == 20.0


def test_master_keeps_a_configured_key() -> None:
    environ = {"MLAPI_FEEDBACK_KEY": "c" * 40}
    assert share_generated_key(environ) is False
    assert environ == {"MLAPI_FEEDBACK_KEY": "c" * 40}


def format_1_id(key: bytes, prediction: float, version: str, issued_at: int) -> str:
    """An id as this service issued them before format 2: HMAC-SHA256, format byte 1."""
    body = struct.pack(">BIdQB", 1, issued_at, prediction, 7, len(version)) + version.encode()
    return encode(body + hmac.digest(key, body, "sha256")[:16])


def test_ids_issued_before_the_blake2b_format_still_verify(signer: PredictionIds) -> None:
    old = format_1_id(KEY, 20.0, "v1", NOW)
    assert signer.verify(old, NOW, DAY).prediction == 20.0
    assert raw(sign(signer, 20.0, "v1", NOW))[0] == 2  # new ids: format 2
    assert reason(signer, format_1_id(OTHER_KEY, 20.0, "v1", NOW)) == "bad_signature"


def test_a_tag_of_one_format_does_not_pass_for_the_other(signer: PredictionIds) -> None:
    """The format byte is signed: turning a valid format-1 id into 'format 2' breaks its tag."""
    relabelled = raw(format_1_id(KEY, 20.0, "v1", NOW))
    relabelled[0] = 2
    assert reason(signer, encode(bytes(relabelled))) == "bad_signature"
