"""The one converter that owns every wire model: camelCase, leniency, ``extra``.

A model is declared with :func:`model`: an immutable, keyword-only attrs class whose
unknown wire fields are kept in ``extra`` and written back. This module imports nothing
else of flatjobs.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, cast, dataclass_transform

import attrs
import cattrs

__all__ = [
    "camel",
    "converter",
    "evolve",
    "extra",
    "from_wire",
    "model",
    "register_tagged_union",
    "to_wire",
    "wire",
]

T = TypeVar("T")

# --------------------------------------------------------------------------- helpers

_MODELS: set[type] = set()
_C = TypeVar("_C", bound=type)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(attrs.field,))
def model(cls: _C) -> _C:
    """Make ``cls`` a frozen, keyword-only attrs class that the converter treats as wire data."""
    out = attrs.frozen(kw_only=True, repr=False)(cls)
    out.__repr__ = _repr  # type: ignore[method-assign,assignment]
    _MODELS.add(out)
    return out


def _repr(self: Any) -> str:
    """Only the fields that are set: a Job has thirty, most of them usually empty."""
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}"
        for f in attrs.fields(type(self))
        if f.repr and f.name != "extra" and getattr(self, f.name) is not None
    )
    return f"{type(self).__name__}({shown})"


def extra() -> Any:
    """The ``extra`` field: fields the platform sent that flatjobs does not model."""
    return attrs.field(factory=dict, repr=False)


def wire(name: str) -> dict[str, str]:
    return {"wire": name}


def camel(name: str) -> str:
    """``outcome_acknowledged_at`` -> ``outcomeAcknowledgedAt``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --------------------------------------------------------------------------- converter

converter = cattrs.Converter()
"""The converter that owns every wire model (camelCase, leniency, ``extra``)."""


def _format_datetime(value: dt.datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() == dt.timedelta(0):
        value = value.replace(tzinfo=None)
        suffix = "Z"
    else:
        suffix = ""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.isoformat(timespec=spec) + suffix


def _parse_datetime(value: Any, _: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


converter.register_structure_hook(dt.datetime, _parse_datetime)
converter.register_unstructure_hook(dt.datetime, _format_datetime)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return ()


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``: a null is read as absent before a value is structured."""
    args = _union_args(tp)
    return args[0] if len(args) == 1 and type(None) in typing.get_args(tp) else tp


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__} {value!r:.80}")


converter.register_structure_hook(str, _structure_str)


def _lenient_enum_of(tp: Any) -> type[enum.StrEnum] | None:
    args = _union_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.StrEnum)]
    return enums[0] if enums and str in args else None


def _lenient_enum(value: Any, enum_cls: type[enum.StrEnum]) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a string for {enum_cls.__name__}, got {value!r}")
    try:
        return enum_cls(value)
    except ValueError:
        return value  # a value the platform added after this release: kept as text


_TAGGED: dict[tuple[Any, ...], Callable[[Any], Any]] = {}


def register_tagged_union(union: Any, structure: Callable[[Any], Any]) -> None:
    """Read ``union`` (of models told apart by a tag, as ``next`` actions are) with
    ``structure``, wherever a field has that type."""
    _TAGGED[_union_args(union)] = structure


def _make_union_structure(tp: Any) -> Callable[[Any, Any], Any]:
    """A structuring function for one union type, with its dispatch worked out once."""
    args = _union_args(tp)
    tagged = _TAGGED.get(args)
    if tagged is not None:
        return lambda value, _: tagged(value)
    models = [a for a in args if a in _MODELS]
    lists = [a for a in args if typing.get_origin(a) is list]
    enum_cls = _lenient_enum_of(tp)
    numbers = int in args
    name = _type_name(tp)

    def structure(value: Any, _: Any) -> Any:
        if models and isinstance(value, Mapping):
            return converter.structure(value, models[0])
        if lists and isinstance(value, list):
            return converter.structure(value, lists[0])
        if enum_cls is not None:
            return _lenient_enum(value, enum_cls)
        if numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return value  # int | float: keep the number exactly as sent
        raise ValueError(f"{value!r:.80} is not a valid {name}")

    return structure


def _type_name(tp: Any) -> str:
    return " | ".join(getattr(a, "__name__", str(a)) for a in _union_args(tp)) or str(tp)


converter.register_structure_hook_factory(
    lambda tp: len(_union_args(tp)) > 1, _make_union_structure
)


def _make_structure(model: type[T]) -> Callable[[Any, Any], T]:
    cls: Any = model
    attrs.resolve_types(cls)  # the names its annotations use, from its own module
    tag = getattr(cls, "TYPE", None)
    by_wire: dict[str, tuple[str, Any, Callable[[Any, Any], Any]]] = {}
    required: list[str] = []
    for f in attrs.fields(cls):
        if f.name == "extra":
            continue
        tp = _without_none(f.type)
        by_wire[f.metadata.get("wire", camel(f.name))] = (f.name, tp, _field_hook(tp))
        if f.default is attrs.NOTHING:
            required.append(f.name)

    def structure(data: Any, _: Any) -> T:
        if isinstance(data, model):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            spec = by_wire.get(key)
            if spec is None:
                if not (tag is not None and key == "type"):
                    extra[key] = value
            elif value is not None:
                name, tp, hook = spec
                try:
                    kwargs[name] = hook(value, tp)
                except Exception as exc:  # re-raised with the field's wire name
                    raise ValueError(f"{cls.__name__}.{key}: {exc}") from exc
        missing = [camel(n) for n in required if n not in kwargs]
        if missing:
            raise ValueError(f"{cls.__name__} is missing required field(s): {', '.join(missing)}")
        if extra:
            kwargs["extra"] = extra
        built: T = cls(**kwargs)
        return built

    return structure


def _field_hook(tp: Any) -> Callable[[Any, Any], Any]:
    """How to structure one field's value, resolved once when the class is first used."""
    if tp is Any:
        return lambda value, _: value
    if typing.get_origin(tp) is dict and typing.get_args(tp)[1:] == (Any,):
        return _structure_json_object
    if typing.get_origin(tp) is list and typing.get_args(tp) == (Any,):
        return _structure_json_list
    # Models' own hooks are built lazily: a model may refer to one defined after it.
    if tp in _MODELS:
        return lambda value, t: converter.structure(value, t)
    return converter.get_structure_hook(tp)


def _structure_json_object(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _structure_json_list(value: Any, _: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON array, got {type(value).__name__}")
    return value


def _make_unstructure(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    attrs.resolve_types(cls)
    tag = getattr(cls, "TYPE", None)
    specs = [
        (f.name, f.metadata.get("wire", camel(f.name)))
        for f in attrs.fields(cls)
        if f.name != "extra"
    ]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": tag} if tag is not None else {}
        for name, wire in specs:
            value = getattr(obj, name)
            if value is not None:
                out[wire] = converter.unstructure(value)
        for key, value in obj.extra.items():
            out.setdefault(key, value)
        return out

    return unstructure


converter.register_structure_hook_factory(lambda tp: tp in _MODELS, _make_structure)
converter.register_unstructure_hook_factory(lambda tp: tp in _MODELS, _make_unstructure)


def evolve(obj: T, **changes: Any) -> T:
    """A copy of the model ``obj`` with ``changes`` applied (models are immutable)."""
    changed: T = attrs.evolve(cast(Any, obj), **changes)
    return changed


def to_wire(obj: Any) -> Any:
    """A model (or a list of them) as the JSON-ready structure the API expects."""
    return converter.unstructure(obj)


def from_wire(data: Any, cls: type[T]) -> T:
    """Read API JSON into ``cls``; raises ``ValueError`` naming the bad field."""
    return converter.structure(data, cls)
