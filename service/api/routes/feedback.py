"""POST /feedback: ground truth for earlier predictions, recorded as accuracy metrics.

200, not 202: the feedback is verified and recorded before the response (the metrics are
in-process counters), nothing is queued for later, so "accepted" means done.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from service.api.errors import ApiError
from service.api.feedback_body import FeedbackRejected, parse_feedback
from service.api.json_body import load_json
from service.api.openapi import JSON, errors, json_response, operation
from service.api.prediction_ids import PredictionClaim
from service.api.request_body import read_body, require_json
from service.api.state import app_state

feedback = Blueprint("feedback", __name__)


@feedback.post("/feedback")
@operation(
    operationId="feedback",
    summary="Ground truth for earlier predictions (live accuracy metrics).",
    description=(
        "One item `{id, actual}` or `{items: [...]}`; `id` is a prediction id from a /predict "
        "response, verified by its signature on any worker or replica, refused once older than "
        "MLAPI_FEEDBACK_MAX_AGE_S. All or nothing: one bad item (its index and field in "
        "`details`) rejects the request and nothing is recorded. 200, not 202: the feedback is "
        "recorded before the response. Ids are not single-use: the same id sent twice counts "
        "twice."
    ),
    requestBody={
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}},
    },
    responses={
        "200": json_response("All items recorded.", "FeedbackResponse"),
        **errors("400", "408", "413", "415", "422", "500"),
    },
)
def record_feedback() -> dict[str, Any]:
    state = app_state()
    settings = state.settings
    instruments = state.instruments
    now = time.time()

    def verify(token: object) -> PredictionClaim:
        return state.ids.verify(token, now, settings.feedback_max_age_s)

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
