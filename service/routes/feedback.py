"""POST /feedback: ground truth for earlier predictions, recorded as accuracy metrics.

200, not 202: the feedback is verified and recorded before the response (the metrics are
in-process counters), nothing is queued for later, so "accepted" means done.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from service.errors import ApiError
from service.feedback import FeedbackRejected, parse_feedback
from service.feedback_token import PredictionClaim
from service.payload import load_json
from service.request_body import read_body, require_json
from service.state import service_state
from service.telemetry import current_telemetry

feedback = Blueprint("feedback", __name__)


@feedback.post("/feedback")
def record_feedback() -> dict[str, Any]:
    state = service_state()
    settings = state.settings
    instruments = current_telemetry().instruments
    now = time.time()

    def verify(token: object) -> PredictionClaim:
        return state.signer.verify(token, now, settings.feedback_max_age_s)

    try:
        require_json()
        document = load_json(read_body(settings.max_body_bytes), settings.max_json_depth)
        batch = parse_feedback(document, verify, settings.max_rows)
    except FeedbackRejected as refused:
        instruments.record_feedback_rejection(refused.reasons)
        raise refused.error from None
    except ApiError as error:
        instruments.record_feedback_rejection((error.code,))
        raise
    instruments.record_feedback(batch, now)
    return {"accepted": len(batch)}
