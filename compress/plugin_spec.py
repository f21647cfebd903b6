"""``NAME[:key=value,...]``: how users name a plugin and its options, parsed and typed from the plugin's own
options dataclass, and written back in one canonical form (defaults filled in), which is what the resume
fingerprint, ``--json``, and the file's PLUGINS section record."""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

from compress.hooks import PLUGINS, Plugin

__all__ = ["PluginSpec", "build_plugin", "option_rows", "parse_plugin"]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class PluginSpec:
    """A plugin by name with its typed options."""

    name: str
    options: Any  # an instance of the plugin's Options dataclass

    def canonical(self) -> str:
        """``name:key=value,...`` with every option, in the Options' field order."""
        cls = PLUGINS.get(self.name)
        items = [f"{f.name}={_format(getattr(self.options, f.name))}" for f in cls.option_fields()]
        return self.name + (":" + ",".join(items) if items else "")


def _format(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _convert(plugin: str, key: str, text: str, annotation: Any) -> Any:
    """``text`` as a value of the declared type; ValueError naming the plugin, the key and what was expected."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        for c in choices:
            if str(c) == text:
                return c
        raise ValueError(f"plugin {plugin}: {key} must be one of {', '.join(map(str, choices))}, got {text!r}")
    try:
        if annotation is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if annotation is int:
            return int(text)
        if annotation is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        if annotation is str:
            return text
    except ValueError:
        raise ValueError(f"plugin {plugin}: {key} must be {_kind(annotation)}, got {text!r}") from None
    raise TypeError(f"plugin {plugin}: option {key} has an unsupported type {annotation!r}")


def _kind(annotation: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        annotation, str(annotation))


def parse_plugin(text: str) -> PluginSpec:
    """``"l1:weight=1e-6"`` -> the l1 plugin's spec. An unknown plugin or key is a LookupError naming the known
    ones; a bad value a ValueError (the Options' own checks included)."""
    name, _, rest = text.strip().partition(":")
    cls = PLUGINS.get(name)  # LookupError listing the known plugins
    fields = {f.name: f for f in cls.option_fields()}
    hints = typing.get_type_hints(cls.Options) if fields else {}
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise LookupError(f"plugin {name} has no option {key!r}; its options: {known}")
        if not sep:
            raise ValueError(f"plugin {name}: expected {key}=VALUE, got {item!r}")
        if key in values:
            raise ValueError(f"plugin {name}: option {key} given twice")
        values[key] = _convert(name, key, value.strip(), hints[key])
    try:
        options = cls.Options(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"plugin {name}: {exc}") from None
    return PluginSpec(name, options)


def build_plugin(text: str) -> Plugin:
    """The plugin a spec names, configured."""
    spec = parse_plugin(text)
    return PLUGINS.get(spec.name)(spec.options)


def option_rows(name: str) -> list[tuple[str, str, str, str]]:
    """``(option, type, default, help)`` per option of a plugin, for ``hinerv plugins``."""
    cls = PLUGINS.get(name)
    hints = typing.get_type_hints(cls.Options) if cls.option_fields() else {}
    rows = []
    for f in cls.option_fields():
        annotation = hints[f.name]
        kind = ("|".join(map(str, typing.get_args(annotation))) if typing.get_origin(annotation) is Literal
                else getattr(annotation, "__name__", str(annotation)))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, kind, _format(default), f.metadata.get("help", "")))
    return rows
