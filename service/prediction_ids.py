"""Ids for predicted rows, one per row, so feedback and traces can point at a single prediction.

Kept apart on purpose: a later issue swaps these random ids for signed tokens.
"""

from __future__ import annotations

import uuid


def new_prediction_ids(count: int) -> list[str]:
    """``count`` random UUID4 hex strings (32 hex characters each)."""
    return [uuid.uuid4().hex for _ in range(count)]
