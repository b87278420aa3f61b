"""Checks of request bodies and query strings: each wrong value is a 400 naming its field.

The platform is typed (Fern-generated SDKs on both sides), so a body field of the wrong type
is refused rather than coerced; a field the API does not define is dropped, as a typed server
would. Free-form objects (``metadata``, ``settings``...) are taken as sent, but only up to
:data:`MAX_DEPTH` levels deep: an answer must always be writable back as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import EmulatorError

__all__ = [
    "MAX_DEPTH",
    "Check",
    "Params",
    "action_list",
    "any_json",
    "boolean",
    "flag",
    "integer",
    "json_object",
    "model",
    "number",
    "object_list",
    "one",
    "positive",
    "read",
    "string",
    "string_list",
    "where_item",
    "where_key",
]

MAX_DEPTH = 32
"""How deeply a free-form value (``metadata``...) may nest; deeper is a 400."""

Check = Callable[[Any, str], Any]
"""Checks one value found at a path (``sheets[0].name``) and returns it as stored, or raises
a 400 naming the path."""

Params = Mapping[str, Sequence[str]]
"""A query string: each name with every value it was given (``ids`` repeats)."""


def where_key(where: str, key: str) -> str:
    """The path of ``key`` inside the object at ``where``."""
    return f"{where}.{key}" if where else key


def where_item(where: str, index: int) -> str:
    """The path of item ``index`` of the list at ``where``."""
    return f"{where}[{index}]"


def kind(value: Any) -> str:
    """What a JSON value is, for error messages (the value itself, when short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r:.40}"
    if isinstance(value, str):
        return f"the string {value!r:.40}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def bad(where: str, expected: str, value: Any) -> EmulatorError:
    """The 400 for a value at ``where`` that is not ``expected``."""
    return EmulatorError(
        400, f"{where or 'the body'} must be {expected}, got {kind(value)}", key=where
    )


def string(value: Any, where: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise bad(where, "a string", value)
    return value


def boolean(value: Any, where: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise bad(where, "a boolean", value)
    return value


def integer(value: Any, where: str) -> int:
    """A whole number."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(where, "a whole number", value)
    return value


def number(value: Any, where: str) -> int | float:
    """A number (the body parser has already refused NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(where, "a number", value)
    return value


def _check_depth(value: Any, where: str) -> None:
    # Iterative: a value nested deeper than the interpreter's recursion limit must be a 400,
    # not a RecursionError while writing an answer.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise EmulatorError(
                400, f"{where} is nested more than {MAX_DEPTH} levels deep", key=where
            )
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def json_object(value: Any, where: str) -> dict[str, Any]:
    """A free-form object, stored as sent."""
    if not isinstance(value, Mapping):
        raise bad(where, "an object", value)
    _check_depth(value, where)
    return dict(value)


def any_json(value: Any, where: str) -> Any:
    """Any JSON value, stored as sent."""
    _check_depth(value, where)
    return value


def string_list(value: Any, where: str) -> list[str]:
    """An array of strings."""
    if not isinstance(value, list):
        raise bad(where, "an array of strings", value)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise bad(where_item(where, index), "a string", item)
    return list(value)


def object_list(value: Any, where: str) -> list[dict[str, Any]]:
    """An array of free-form objects."""
    if not isinstance(value, list):
        raise bad(where, "an array of objects", value)
    return [json_object(item, where_item(where, i)) for i, item in enumerate(value)]


def list_of(check: Check, expected: str) -> Check:
    """An array whose every item passes ``check``."""

    def checked(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise bad(where, expected, value)
        return [check(item, where_item(where, i)) for i, item in enumerate(value)]

    return checked


def read(
    body: Any, schema: Mapping[str, Check], where: str = "", required: Sequence[str] = ()
) -> dict[str, Any]:
    """The fields of ``schema`` found in the object ``body``, each checked; a ``null`` is read
    as absent and a field the schema does not name is dropped."""
    if not isinstance(body, Mapping):
        raise bad(where, "an object", body)
    out: dict[str, Any] = {}
    for key, check in schema.items():
        value = body.get(key)
        if value is not None:
            out[key] = check(value, where_key(where, key))
    for key in required:
        if key not in out:
            path = where_key(where, key)
            raise EmulatorError(400, f"{path} is required", key=path)
    return out


def model(schema: Mapping[str, Check], required: Sequence[str] = ()) -> Check:
    """A check reading an object with :func:`read`."""
    return lambda value, where: read(value, schema, where, required)


ACTION: dict[str, Check] = {
    "label": string,
    "operation": string,
    "mode": string,
    "primary": boolean,
    "confirm": boolean,
    "description": string,
    "tooltip": string,
    "icon": string,
    "schedule": string,
    "messages": object_list,
    "inputForm": json_object,
    "constraints": object_list,
    "mount": json_object,
    "slug": string,
    "type": string,
    "requireAllValid": boolean,
    "requireSelection": boolean,
    "guide": json_object,
    "guardrail": json_object,
}
action_list = list_of(model(ACTION, required=("label",)), "an array of actions")
"""An array of actions (``label`` required)."""


# --------------------------------------------------------------------------- queries


def one(params: Params, key: str) -> str | None:
    """The first value of a query parameter, if it was given."""
    values = params.get(key)
    return values[0] if values else None


def flag(params: Params, key: str, default: bool = False) -> bool:
    """A boolean query parameter: ``true`` or ``false``, as the SDKs send them."""
    value = one(params, key)
    if value is None:
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise EmulatorError(400, f"{key} must be true or false, got {value!r:.40}", key=key)


def positive(params: Params, key: str, default: int) -> int:
    """A whole-number query parameter of at least 1."""
    value = one(params, key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise EmulatorError(400, f"{key} must be a whole number >= 1, got {value!r:.40}", key=key)
    return number
