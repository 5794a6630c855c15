"""The JSON type of a decoded value, by its JSON name, for messages and schemas."""

from __future__ import annotations

from typing import Any


def json_type(value: Any) -> str:
    """null, boolean, integer, number, string, array or object (a Python type name otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names = {str: "string", list: "array", tuple: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)
