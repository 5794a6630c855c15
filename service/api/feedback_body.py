"""Ground truth for earlier predictions: the body of POST /feedback, checked all or nothing.

Accepted bodies: ``{"id": <prediction id>, "actual": <number>}`` or ``{"items": [{"id", "actual"},
...]}`` with 1..MLAPI_MAX_ROWS items. Every id is verified (service/api/prediction_ids.py) and every
actual must be a finite number. One bad item rejects the whole request and nothing is recorded:
a client fixes the named items and resends the batch without double-counting the good ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from service.api.errors import ERROR_CODES, REFUSED_BEFORE_ROUTES, ApiError, Detail
from service.api.json_body import (
    MAX_DETAILS,
    check_row_count,
    join_field,
    key_preview,
    value_problem,
)
from service.api.json_body import rejected as rejected_error
from service.api.prediction_ids import InvalidPredictionId, PredictionClaim
from service.json_types import json_type

ITEM_KEYS = ("id", "actual")
# The client-facing meaning of each token verification failure (the reason is stable).
ID_PROBLEMS = {
    "malformed": "malformed: not a prediction id issued by this service",
    "bad_signature": "bad_signature: not signed with this service's feedback key",
    "expired": "expired: older than MLAPI_FEEDBACK_MAX_AGE_S",
    "not_yet_valid": "not_yet_valid: issued in the future (clock skew between replicas?)",
}

# Every reason a request to POST /feedback is refused for (the rejection counter's `reason`): an
# id's verification failure, else the error code of any client error a view can raise.
REJECTION_REASONS = (
    *ID_PROBLEMS,
    *(
        code
        for code, (status, _) in ERROR_CODES.items()
        if 400 <= status < 500
        and code not in REFUSED_BEFORE_ROUTES
        # Counted by the id's own reason instead (malformed, bad_signature, ...).
        and code != "invalid_prediction_id"
    ),
)

Verify = Callable[[object], PredictionClaim]


@dataclass(frozen=True)
class FeedbackBatch:
    """Verified feedback, one entry per item, in item order."""

    predictions: np.ndarray
    actuals: np.ndarray
    issued_at: np.ndarray
    model_versions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.model_versions)


class FeedbackRejected(Exception):
    """The request is refused: `error` is the response; `reasons` one label per problem found
    (a token reason such as `expired`, or the error code), for the rejection counter."""

    def __init__(self, error: ApiError, reasons: tuple[str, ...]) -> None:
        super().__init__(error.message)
        self.error = error
        self.reasons = reasons


def parse_feedback(document: Any, verify: Verify, max_items: int) -> FeedbackBatch:
    """The verified batch in a decoded JSON body, or FeedbackRejected naming every bad item
    (up to MAX_DETAILS) by index and field."""
    items, path = _items(document, max_items)
    claims: list[PredictionClaim] = []
    actuals: list[float] = []
    problems: list[tuple[Detail, str]] = []
    for i, item in enumerate(items):
        item_path = path(i)
        row = i if item_path else None
        item_problems = list(_item_problems(item, item_path, row))
        if type(item) is dict and "id" in item:
            try:
                claim = verify(item["id"])
            except InvalidPredictionId as invalid:
                field = join_field(item_path, "id")
                detail = Detail(field, ID_PROBLEMS[invalid.reason], "invalid_prediction_id", row)
                item_problems.append((detail, invalid.reason))
        if not item_problems:
            claims.append(claim)
            actuals.append(item["actual"])
            continue
        problems.extend(item_problems)
        if len(problems) > MAX_DETAILS:
            break
    if problems:
        details = [detail for detail, _ in problems]
        raise FeedbackRejected(rejected_error(details), tuple(r for _, r in problems))
    return FeedbackBatch(
        predictions=np.fromiter((c.prediction for c in claims), np.float64, len(claims)),
        actuals=np.array(actuals, dtype=np.float64),
        issued_at=np.fromiter((c.issued_at for c in claims), np.float64, len(claims)),
        model_versions=tuple(c.model_version for c in claims),
    )


def _items(document: Any, max_items: int) -> tuple[list[Any], Callable[[int], str]]:
    """The items and the field path of item i ("items[i]", or "" for the single-item body)."""
    if type(document) is not dict:
        _refuse(Detail("body", f"must be an object, got {json_type(document)}", "invalid_body"))
    if "items" not in document:
        return [document], lambda _i: ""
    unknown = [key for key in document if key != "items"]
    if unknown:
        _refuse(Detail(key_preview(unknown[0]), "is not a member of the body", "unknown_field"))
    items = document["items"]
    if type(items) is not list:
        _refuse(Detail("items", f"must be an array, got {json_type(items)}", "invalid_body"))
    try:
        check_row_count(len(items), max_items, noun="item")
    except ApiError as error:
        raise FeedbackRejected(error, (error.code,)) from None
    return items, lambda i: f"items[{i}]"


def _item_problems(item: Any, path: str, row: int | None) -> Iterator[tuple[Detail, str]]:
    if type(item) is not dict:
        problem = f"must be an object with id and actual, got {json_type(item)}"
        yield Detail(path or "body", problem, "invalid_body", row), "invalid_body"
        return
    for key in ITEM_KEYS:
        if key not in item:
            detail = Detail(join_field(path, key), "is required", "missing_field", row)
            yield detail, "missing_field"
    for key in islice((k for k in item if k not in ITEM_KEYS), MAX_DETAILS):
        field = join_field(path, key_preview(key))
        yield (
            Detail(field, "is not a member of a feedback item", "unknown_field", row),
            ("unknown_field"),
        )
    if "actual" in item and (problem := value_problem(item["actual"])) is not None:
        yield Detail(join_field(path, "actual"), problem, "invalid_value", row), "invalid_value"


def _refuse(detail: Detail) -> None:
    raise FeedbackRejected(rejected_error([detail]), (detail.code,))
