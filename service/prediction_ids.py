"""Prediction ids: one signed token per predicted row (service/feedback_token.py), so that
POST /feedback can be verified on any worker, replica or after a restart without shared state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from service.config import ConfigError
from service.feedback_token import KEY_ENV, FeedbackSigner, resolve_keys

logger = logging.getLogger(__name__)


def feedback_signer(environ: Mapping[str, str]) -> FeedbackSigner:
    """The signer for MLAPI_FEEDBACK_KEY (+ MLAPI_FEEDBACK_KEY_PREVIOUS). Without a key, a random
    one with a warning: ids then verify only in processes that share it (gunicorn's workers do,
    see gunicorn.conf.py; other replicas and restarts do not). A short key is a ConfigError."""
    try:
        keys = resolve_keys(environ)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    if keys.ephemeral:
        logger.warning(
            "%s is not set: prediction ids are signed with a random key of this process, so "
            "feedback works only here and only until a restart; set the same key on every "
            "worker and replica",
            KEY_ENV,
        )
    return FeedbackSigner(keys.keys)


def prediction_ids(
    signer: FeedbackSigner, predictions: list[float], model_version: str
) -> list[str]:
    """One id per prediction, in row order, carrying the prediction, version and issue time."""
    return signer.sign_many(predictions, model_version, int(time.time()))
