"""Strict conversion of parsed YAML into frozen dataclasses, collecting every problem with its path.

The dataclasses are the schema: their type hints say what is allowed, `field(metadata=...)` adds a
check and a one-line doc. Unknown keys are errors, because a misspelt key that is silently ignored is
how a village site ends up publishing to the wrong place for months.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from agent.config.messages import Said, at

T = TypeVar("T")

# A check returns None when the value is fine, or what is wrong in words for a technician.
Check = Callable[[Any], str | None]


def meta(doc: str, check: Check | None = None) -> dict[str, Any]:
    """Metadata for a config field: its documentation and an optional extra check."""
    return {"doc": doc, "check": check}


# Every number in the config is within this: no interval, limit or size the agent uses comes near
# it, and beyond it sleeps overflow, SQLite integers overflow and `str(int)` refuses to print.
NUMBER_LIMIT = 1_000_000_000
# MQTT carries a string in at most 65,535 bytes (length prefix of two bytes): topics, client ids,
# user names. No text setting needs more.
TEXT_MAX_BYTES = 65_535
# Linux refuses longer paths (PATH_MAX), and `Path.is_file()` raises on them instead of answering.
PATH_MAX_BYTES = 4_095
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: str, limit: int = 60) -> str:
    """A piece of text safe to print in one line of an error: escaped, and cut when long."""
    text = repr(value[:limit])
    return text if len(value) <= limit else Said("value.cut", text=text, n=len(value))


def text_problem(value: str, max_bytes: int = TEXT_MAX_BYTES) -> str | None:
    """Why `value` cannot be carried as config text (into MQTT, a path, a log), or None."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # YAML's "\ud800" escape gives a lone surrogate: no UTF-8 encoder, and no broker, takes it.
        return Said("text.surrogate", value=shown(value))
    if _CONTROL.search(value):
        return Said("text.control", value=shown(value))
    if size > max_bytes:
        return Said("text.long", value=shown(value), size=size, max=max_bytes)
    return None


def _describe(value: object) -> str:
    if value is None:
        return Said("value.nothing")
    if isinstance(value, bool):
        return Said("value.bool", value=str(value).lower())
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return Said("value.list")
    if isinstance(value, dict):
        return Said("value.mapping")
    if isinstance(value, int) and abs(value) > NUMBER_LIMIT:
        return Said("value.huge", n=value.bit_length() * 3 // 10)
    return shown(repr(value))


def _in_bounds(value: float) -> bool:
    return math.isfinite(value) and -NUMBER_LIMIT <= value <= NUMBER_LIMIT


class _Converter:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(at(path, message))

    def value(self, hint: Any, raw: object, path: str) -> tuple[bool, Any]:
        """Convert raw into the hinted type; on failure record the problem and return (False, None)."""
        origin = get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in get_args(hint) if a is not type(None)]
            if raw is None and len(options) < len(get_args(hint)):
                return True, None
            return self.value(options[0], raw, path)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(raw, dict):
                self.fail(path, Said("expect.mapping", got=_describe(raw)))
                return False, None
            return self.record(hint, raw, path)
        if origin is Literal:
            allowed = get_args(hint)
            # YAML reads `protocol: 5` as a number; the choice is still the text "5".
            number = isinstance(raw, int | float) and not isinstance(raw, bool)
            candidate = str(raw) if number and _in_bounds(raw) else raw  # type: ignore[arg-type]
            if candidate in allowed:
                return True, candidate
            choices = ", ".join(repr(a) for a in allowed)
            self.fail(path, Said("expect.choice", choices=choices, got=_describe(raw)))
            return False, None
        if origin is tuple:
            (item_hint, _ellipsis) = get_args(hint)
            if not isinstance(raw, list):
                self.fail(path, Said("expect.list", got=_describe(raw)))
                return False, None
            items = []
            ok = True
            for index, item in enumerate(raw):
                good, converted = self.value(item_hint, item, f"{path}[{index}]")
                ok = ok and good
                items.append(converted)
            return ok, tuple(items)
        return self.scalar(hint, raw, path)

    def scalar(self, hint: Any, raw: object, path: str) -> tuple[bool, Any]:
        if hint is bool:
            if isinstance(raw, bool):
                return True, raw
            self.fail(path, Said("expect.bool", got=_describe(raw)))
        elif hint is int:
            if isinstance(raw, int) and not isinstance(raw, bool) and _in_bounds(raw):
                return True, raw
            self.fail(path, Said("expect.int", limit=f"{NUMBER_LIMIT:,}", got=_describe(raw)))
        elif hint is float:
            # YAML reads `.inf` and `.nan` as numbers; no interval or limit means either.
            if isinstance(raw, int | float) and not isinstance(raw, bool) and _in_bounds(raw):
                return True, float(raw)
            self.fail(path, Said("expect.number", limit=f"{NUMBER_LIMIT:,}", got=_describe(raw)))
        elif hint is str or hint is Path:
            kind = Said("kind.text" if hint is str else "kind.path")
            if not isinstance(raw, str) or not raw.strip():
                self.fail(path, Said("expect.kind", kind=kind, got=_describe(raw)))
                return False, None
            problem = text_problem(raw, TEXT_MAX_BYTES if hint is str else PATH_MAX_BYTES)
            if problem is not None:
                self.fail(path, problem)
                return False, None
            return True, raw if hint is str else Path(raw)
        else:  # pragma: no cover - a schema bug, not a user error
            raise TypeError(f"unsupported type in config schema at {path}: {hint!r}")
        return False, None

    def record(self, cls: type[T], raw: Mapping[Any, Any], path: str) -> tuple[bool, Any]:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        hints = typing.get_type_hints(cls)
        prefix = f"{path}." if path else ""
        ok = True
        for key in raw:
            if key not in fields:
                hint_text: str = ""
                import difflib  # noqa: PLC0415 - only for a config with a typo in it

                name = str(key) if isinstance(key, str) else _describe(key)
                close = difflib.get_close_matches(name, list(fields), n=1)
                if close:
                    hint_text = Said("key.did_you_mean", name=close[0])
                if text_problem(name, 200) is not None:
                    name = shown(name)  # a key with a newline in it must not forge a second line
                self.fail(
                    f"{prefix}{name}", Said("key.unknown", hint=hint_text, known=", ".join(fields))
                )
                ok = False
        values: dict[str, Any] = {}
        for name, spec in fields.items():
            where = f"{prefix}{name}"
            if name not in raw:
                required = (
                    spec.default is dataclasses.MISSING
                    and spec.default_factory is dataclasses.MISSING
                )
                if required:
                    self.fail(where, Said("key.missing"))
                    ok = False
                continue
            good, converted = self.value(hints[name], raw[name], where)
            if good and converted is not None and spec.metadata.get("check") is not None:
                problem = spec.metadata["check"](converted)
                if problem is not None:
                    self.fail(where, problem)
                    good = False
            if good:
                values[name] = converted
            ok = ok and good
        if not ok:
            return False, None
        return True, cls(**values)


def convert(cls: type[T], raw: object) -> tuple[T | None, list[str]]:
    """Build `cls` from parsed YAML. Returns the object, or None and every problem found."""
    converter = _Converter()
    if not isinstance(raw, dict):
        converter.problems.append(Said("expect.top_mapping", got=_describe(raw)))
        return None, converter.problems
    _, result = converter.record(cls, raw, "")
    if converter.problems:
        return None, converter.problems
    return typing.cast(T, result), []


def describe_fields(cls: type[Any], path: str = "") -> list[tuple[str, str]]:
    """Every key of the schema with its doc line, depth first: for docs and for checking the sample."""
    rows: list[tuple[str, str]] = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        where = f"{path}.{spec.name}" if path else spec.name
        rows.append((where, str(spec.metadata.get("doc", ""))))
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            rows.extend(describe_fields(hint, where))
    return rows
