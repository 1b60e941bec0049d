"""One field of a cluster class's form, without widgets: its kind, default, help and checks.

Kinds: int, float, bool, str, list, dict, bytes (a size: ``8GiB``, checked with
``dask.utils.parse_bytes``), walltime (``[D-]HH:MM:SS``, as SLURM, PBS and LSF take it), seconds
(a number or a duration such as ``60s``, checked with ``dask.utils.parse_timedelta``) and any. The
kind comes from the parameter's annotation, else its documented type, else its default; names
that always carry a unit (memory, walltime, *timeout) say so whatever their type.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["UNSET", "FieldSpec", "field_kind"]

_TYPE_WORDS = {
    "int": "int", "integer": "int", "float": "float", "number": "float", "bool": "bool",
    "boolean": "bool", "str": "str", "string": "str", "list": "list", "sequence": "list",
    "tuple": "list", "dict": "dict", "mapping": "dict",
}  # fmt: skip
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM/PBS/LSF: [D-]HH:MM:SS, MM, ...
UNSET: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class FieldSpec:
    """One form field: a keyword argument of the cluster class (or of its job class)."""

    name: str
    kind: str  # int, float, bool, str, list, dict, bytes (a size), walltime, seconds, any
    default: Any
    help: str = ""
    type_text: str = ""
    advanced: bool = False  # documented nowhere: shown under "more options"
    job: bool = False  # a keyword of the job class (dask-jobqueue's **job_kwargs)
    default_text: str = ""  # what None means here, e.g. the value dask config (jobqueue.yaml) gives

    @property
    def placeholder(self) -> str:
        """What an empty field means: the default, or "required"."""
        if self.default is UNSET:
            return "required"
        if self.default is None:
            return self.default_text or "default"
        if isinstance(self.default, (list, tuple, dict)) and not self.default:
            return "default: none"
        text = self.default if isinstance(self.default, str) else repr(self.default)
        return f"default: {text}" if text != "" else "default: empty"

    @property
    def tooltip(self) -> str:
        """The docstring's help for this parameter, with its documented type."""
        head = f"{self.name} ({self.type_text})" if self.type_text else self.name
        return f"{head}: {self.help}" if self.help else head

    def parse(self, raw: Any) -> Any:
        """The value typed into the field, converted; ``UNSET`` when empty; ValueError if bad."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return UNSET
        if not isinstance(raw, str):
            self.check(raw)
            return raw
        text = raw.strip()
        kind = self.kind
        if kind == "bool":
            lowered = text.lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(f"expected true or false, got {text!r}")
            return lowered in ("true", "yes", "1")
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"expected a whole number, got {text!r}") from None
        if kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"expected a number, got {text!r}") from None
        if kind == "list":
            if text.startswith("["):
                value = _json(text, list, 'a JSON list such as ["--gres=gpu:1"]')
            else:  # one item per line, as job directives are written
                value = [line.strip() for line in text.splitlines() if line.strip()]
            self.check(value)
            return value
        if kind == "dict":
            return _json(text, dict, 'a JSON object such as {"key": "value"}')
        if kind in ("bytes", "seconds") and text.isdigit():
            return int(text)
        if kind == "any":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
        self.check(text)
        return text

    def check(self, value: Any) -> None:
        """Raise ValueError naming what is accepted if ``value`` does not fit the field."""
        kind = self.kind
        if value is None and self.default is None:
            return
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"expected a whole number, got {value!r}")
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"expected a number, got {value!r}")
        if kind == "str" and not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        if kind == "list" and not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        if kind == "dict" and not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {value!r}")
        if kind == "bytes":
            _check_size(value, allow_auto=self.name == "memory_limit")
        if kind == "walltime" and not (isinstance(value, str) and _WALLTIME.match(value)):
            raise ValueError(f"expected a walltime such as 01:30:00 or 2-00:00:00, got {value!r}")
        if kind == "seconds":
            _check_duration(value)


def _json(text: str, kind: type, example: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}); expected {example}") from None
    if not isinstance(value, kind):
        raise ValueError(f"expected {example}, got {text!r}")
    return value


def _check_size(value: Any, allow_auto: bool) -> None:
    from dask.utils import parse_bytes

    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return
    if isinstance(value, str):
        if allow_auto and value == "auto":
            return
        try:
            parse_bytes(value)
            return
        except (ValueError, TypeError):
            pass
    accepted = "a size such as 8GiB or 16 GB, or a number of bytes" + (" or 'auto'" * allow_auto)
    raise ValueError(f"expected {accepted}, got {value!r}")


def _check_duration(value: Any) -> None:
    from dask.utils import parse_timedelta

    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return
    try:
        parse_timedelta(value)
        return
    except (ValueError, TypeError, KeyError):
        pass
    raise ValueError(f"expected a number of seconds or a duration such as '60s', got {value!r}")


def field_kind(name: str, annotation: Any, type_text: str, default: Any) -> str:
    lname = name.lower()
    if lname in ("memory", "memory_limit", "job_mem") or lname.endswith("_memory"):
        return "bytes"
    if lname == "walltime":
        return "walltime"
    kind = _kind_of_annotation(annotation)
    if kind is None:
        words = re.findall(r"[A-Za-z]+", type_text.lower())
        found = [_TYPE_WORDS[w] for w in words if w in _TYPE_WORDS]
        if "int" in found and "float" in found:
            kind = "float"
        elif found:
            kind = found[0]
    if kind is None and default not in (None, UNSET):
        kind = _kind_of_annotation(type(default))
    if kind in ("int", "float") and lname.endswith("timeout"):
        return "seconds"
    if lname.endswith("timeout") and kind in (None, "str"):
        return "seconds"
    return kind or "any"


def _kind_of_annotation(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty or annotation is None:
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args and typing.get_origin(annotation) in (
        typing.Union,
        getattr(types, "UnionType", None),
    ):
        kinds = {_kind_of_annotation(a) for a in args}
        return kinds.pop() if len(kinds) == 1 else ("float" if kinds == {"int", "float"} else None)
    origin = typing.get_origin(annotation) or annotation
    for py, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "dict")):
        if origin is py:
            return kind
    if origin in (list, tuple):
        return "list"
    return None
