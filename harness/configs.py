"""Config dataclasses check themselves: types from their own annotations, ranges in their `validate`.

Every config dataclass (TrainConfig, each algorithm's Config, an experiment's [eval] table) calls
`check_config(self)` in `__post_init__`; the class lists no other class, and nothing here names an
algorithm. A bad value raises one ConfigError naming the key, what it got and what is allowed;
`from_table` also rejects unknown keys, listing the valid ones. `ConfigError.within(table)` puts
the TOML table in front of the key (`[train] updates: ...`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key and the allowed values."""

    def __init__(self, key: str, detail: str, table: str | None = None):
        self.key, self.detail, self.table = key, detail, table
        where = f"[{table}] {key}" if table else key
        super().__init__(f"{where}: {detail}")

    def within(self, table: str) -> ConfigError:
        """The same error inside an outer table: `[algo] w_min` within `methods.sgcd` is
        `[methods.sgcd.algo] w_min`."""
        return ConfigError(self.key, self.detail, f"{table}.{self.table}" if self.table else table)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "nothing (omit the key)"
    if isinstance(tp, type):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                "dict": "a table", "list": "a list"}.get(tp.__name__, tp.__name__)  # fmt: skip
    return str(tp)


def _matches(value: Any, tp: Any) -> bool:
    """Whether `value` (as TOML gives it) fits annotation `tp`. bool is not an int; 1.5 is not an int."""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is not None:
        if not isinstance(value, origin):
            return False
        args = typing.get_args(tp)
        if origin is list and args:
            return all(_matches(v, args[0]) for v in value)
        if origin is dict and len(args) == 2:
            return all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def _expected(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp))
    if origin is list:
        args = typing.get_args(tp)
        return f"a list of {_type_name(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    if origin is dict:
        return "a table"
    return _type_name(tp)


def check_types(obj: Any) -> None:
    """Each field of dataclass `obj` holds a value of its annotated type (floats must be finite)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        if not _matches(value, tp):
            raise ConfigError(f.name, f"expected {_expected(tp)}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f.name, f"must be a finite number; got {value!r}")


def check_config(obj: Any) -> None:
    """Types first, then the class's own `validate()` (ranges and choices), if it has one."""
    check_types(obj)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()


def require(ok: bool, key: str, allowed: str, value: Any) -> None:
    """Raise ConfigError for `key` unless `ok`; `allowed` says what would be accepted."""
    if not ok:
        raise ConfigError(key, f"must be {allowed}; got {value!r}")


def one_of(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    require(value in choices, key, "one of " + " | ".join(map(str, choices)), value)


def at_least(key: str, value: Any, low: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    require(value is not None and value >= low, key, f"at least {low}" + (" (or omitted)" if allow_none else ""),
            value)  # fmt: skip


def from_table(cls: type[T], data: Mapping[str, Any] | None, table: str | None = None) -> T:
    """`cls(**data)` with unknown keys rejected (naming them and the valid keys) and every error
    located in `table`."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(table or cls.__name__, f"expected a table of keys; got {data!r}")
    data = dict(data or {})
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(", ".join(unknown), f"unknown key{'s' if len(unknown) > 1 else ''}; "
                          f"valid keys: {', '.join(known) or '(none)'}", table)  # fmt: skip
    try:
        return cls(**data)
    except ConfigError as e:
        raise (e.within(table) if table else e) from None
