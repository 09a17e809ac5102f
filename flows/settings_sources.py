"""Where settings come from, and how a bad one becomes one line.

Sources, lowest first: the model's defaults < a TOML file < the environment < command-line flags.
pydantic-settings reads the file (`TomlConfigSettingsSource`) and the environment
(`EnvSettingsSource`: `LOGISYNC_<NAME>`, a table's keys nested with `__`, JSON for lists and
tables). This module adds what keeps a setting from being lost without a word:
- every key of every source must name a setting (`wrokers = 2`, `LOGISYNC_WROKERS=2` are errors);
- one source may not give a setting twice under two names (`LOGISYNC_MASTER` and
  `LOGISYNC_MASTER_DIR`): which one would win is not obvious;
- tables merge key by key across sources (an environment variable adds one key to the file's
  `[kafka]` table instead of replacing it); any other value is replaced whole.

It knows nothing of the particular settings: the settings class is a parameter. It does not read
`os.environ`; flows/settings.py passes it in.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, TomlConfigSettingsSource
from pydantic_settings import SettingsError as SourceParseError


class SettingsError(ValueError):
    """A bad setting; the message is one line naming the setting and the value (never a secret)."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems  # (setting key, problem) pairs, to add where each value came from


@dataclass
class Layer:
    """One source's settings, keyed as the model validates them, and where each was given."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def _names(settings_cls: type[BaseSettings]) -> dict[str, tuple[str, ...]]:
    """Setting key -> every name it is accepted under (the key first)."""
    table: dict[str, tuple[str, ...]] = {}
    for name, info in settings_cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            choices = tuple(choice for choice in alias.choices if isinstance(choice, str))
        else:
            choices = (alias if isinstance(alias, str) else name,)
        table[choices[0]] = choices
    return table


def env_var_names(settings_cls: type[BaseSettings]) -> dict[str, tuple[str, ...]]:
    """Setting key -> the environment variables that set it (derived: prefix + NAME)."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    return {key: tuple(prefix + name.upper() for name in names) for key, names in _names(settings_cls).items()}


def _spellings(settings_cls: type[BaseSettings]) -> dict[str, str]:
    return {name.lower(): key for key, names in _names(settings_cls).items() for name in names}


def canonical(settings_cls: type[BaseSettings], values: Mapping[str, Any], origin: str) -> Layer:
    """`values` keyed by setting key; an unknown name, or one setting under two names, is an error."""
    spellings = _spellings(settings_cls)
    layer = Layer()
    given: dict[str, str] = {}
    for name, value in values.items():
        key = spellings.get(str(name).lower())
        if key is None:
            raise SettingsError(f"{origin}: unknown setting {name!r}")
        if key in given:
            raise SettingsError(f"{origin}: {given[key]!r} and {name!r} both set {key}")
        given[key] = str(name)
        layer.values[key] = value
        layer.origins[key] = origin
    return layer


def file_layer(settings_cls: type[BaseSettings], path: Path) -> Layer:
    """The TOML file's top-level keys and tables."""
    if not path.is_file():
        raise SettingsError(f"config file {path} does not exist")
    try:
        document = TomlConfigSettingsSource(settings_cls, toml_file=path).toml_data
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"config file {path}: cannot read it: {exc}") from None
    return canonical(settings_cls, document, f"config file {path}")


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ in production)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The model is case-insensitive, so the source looks names up in lower case.
        return {name.lower(): value for name, value in self._environ.items()}


def env_layer(
    settings_cls: type[BaseSettings],
    environ: Mapping[str, str],
    *,
    tables: Iterable[str] = (),
    not_settings: Iterable[str] = (),
) -> Layer:
    """Settings from `LOGISYNC_*` variables. `tables`: settings whose keys may be set one by one
    (`LOGISYNC_KAFKA__SASL_PASSWORD`); `not_settings`: variables of the same prefix that belong to
    other tools. Any other variable with the prefix that names no setting is an error."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    delimiter = str(settings_cls.model_config.get("env_nested_delimiter", "__"))
    spellings = _spellings(settings_cls)
    nested = set(tables)
    ignored = {name.upper() for name in not_settings}
    whole: dict[str, list[str]] = {}  # setting key -> variables that give its whole value
    parts: dict[str, list[str]] = {}  # table setting key -> variables that give one of its keys
    for var in environ:
        upper = var.upper()
        if not upper.startswith(prefix) or upper in ignored:
            continue
        head, sep, _rest = upper[len(prefix) :].lower().partition(delimiter.lower())
        key = spellings.get(head)
        if key is None or (sep and key not in nested):
            raise SettingsError(f"environment: {var} is not a setting (see the configuration table in the README)")
        (parts if sep else whole).setdefault(key, []).append(var)
    for key, names in whole.items():
        if len(names) > 1:
            raise SettingsError(f"environment: {' and '.join(sorted(names))} both set {key}")
    try:
        found = _Environment(settings_cls, environ)()
    except SourceParseError as exc:
        match = re.search(r'field "([^"]+)"', str(exc))
        names = whole.get(spellings.get(match.group(1).lower(), ""), []) if match else []
        shown = " / ".join(sorted(names)) or "a LOGISYNC_* variable"
        raise SettingsError(f"environment: {shown} is not valid JSON") from None
    layer = canonical(settings_cls, found, "environment")
    for key in layer.values:
        layer.origins[key] = ", ".join(sorted(whole.get(key, []) + parts.get(key, [])))
    return layer


def flag_layer(settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> Layer:
    """Command-line values; None means the flag was not given."""
    return canonical(settings_cls, {k: v for k, v in values.items() if v is not None}, "the command line")


def merge(layers: Iterable[Layer]) -> Layer:
    """Later layers win; tables (mappings) merge key by key at every depth."""
    merged = Layer()
    for layer in layers:
        for key, value in layer.values.items():
            merged.values[key] = _merge_value(merged.values.get(key), value)
            merged.origins[key] = layer.origins.get(key, "")
    return merged


def _merge_value(base: Any, top: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        out = dict(base)
        for key, value in top.items():
            out[key] = _merge_value(out.get(key), value)
        return out
    return top


# How pydantic's error types read in a one-line message ("workers must be >= 1, got 0").
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_KINDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "path_type": "a path",
    "dict_type": "a table",
    "mapping_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
}


def problems(exc: ValidationError, is_secret: Callable[[tuple[Any, ...]], bool]) -> tuple[tuple[str, str], ...]:
    """One (setting key, problem) per setting from a ValidationError. `is_secret(loc)` says whether
    the value at that location must not be shown."""
    found: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        key = str(loc[0]) if loc else ""
        if key in found:
            continue  # a union reports one error per member: the first says enough
        found[key] = _problem(key, error, shown=not is_secret(loc))
    return tuple(found.items())


def _problem(key: str, error: Any, *, shown: bool) -> str:
    kind = str(error["type"])
    context = error.get("ctx") or {}
    got = f", got {_show(error.get('input'))}" if shown else ""
    if kind == "value_error":
        text = str(context.get("error", error["msg"]))
        return f"{key} {text}" if key else text
    if kind == "extra_forbidden":
        return f"unknown setting {key!r}"
    if kind in _BOUNDS:
        bound = next(iter(context.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{key} must be {_BOUNDS[kind]} {bound}{got}"
    if kind == "finite_number":
        return f"{key} must be a finite number{got}"
    if kind in _KINDS:
        return f"{key} must be {_KINDS[kind]}{got}"
    message = str(error["msg"])
    return f"{key}: {message[:1].lower()}{message[1:]}{got}"


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def one_line(found: tuple[tuple[str, str], ...], origins: Mapping[str, str] | None = None) -> str:
    """The problems joined into one line, each with where its value came from when known."""
    lines = []
    for key, text in found:
        origin = (origins or {}).get(key)
        lines.append(f"{text} (from {origin})" if origin else text)
    return "; ".join(lines)
