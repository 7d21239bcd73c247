"""Keep pydantic out of ovbackup's start-up: ``--help``, TAB completion, and every run whose values are plain.

typer (0.29) checks each parameter value with a pydantic ``TypeAdapter`` and builds that adapter on the
first value the parameter sees, even ``None``: any run paid for importing pydantic (about 90-150 ms, more
than all the rest of start-up). Here each typer parameter starts with a stand-in that

- answers ``None`` itself (as typer does, without the adapter);
- passes values through while a shell completion parses resiliently (nothing is converted there, values
  only decide what to offer);
- converts the values it is sure of natively, to the very value the adapter returns: ``str``, ``bool``,
  ``int`` and ``float`` (typer has stripped ``Optional``) and ``list`` of those, with typer's
  ``min=``/``max=`` (not ``clamp=`` or ``parser=``). Sure means a default of the exact type, or a command
  line string in its plainest spelling: an int is ``-?[0-9]{1,18}``, a float the same with at most 15
  digits, optionally a dot and 1 to 15 more (Python and pydantic's Rust parser both round such a
  decimal correctly, so to the same float); and within the bounds, compared as pydantic compares them;
- hands anything else to the adapter typer would have built: malformed and out-of-range values (runs
  that end in typer's usage error, in typer's words), and legal but unusual spellings (``+3``, ``1_000``,
  ``' 3'``, ``2.0`` for an int, ``1e3``, ``inf``; ``yes`` for a bool), which cost the pydantic import but
  get exactly typer's value.

``OVBACKUP_TYPER_COERCION=pydantic`` in the environment leaves typer as shipped (no stand-in at all): a
debugging switch, and what tests/test_coercion.py compares every answer against.

This is the only module that reaches into typer's private modules. It is active only for the typer
versions in ``TESTED``; for any other, or if the internals moved, importing it fails, ``main`` goes on
without it and start-up is merely slower (tests/test_startup_imports.py notices; tests/test_coercion.py
runs the CLI both ways).
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import typer

#: typer versions this module was tested with (CI runs the lowest and the newest allowed); any other
#: version makes this import fail, and ``main`` runs stock typer: slower to start, never broken.
TESTED = ((0, 29), (0, 30))


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


if not TESTED[0] <= _release(typer.__version__) < TESTED[1]:
    raise ImportError(f"typer {typer.__version__} is outside the range ovbackup's fast path was tested with")

# Only once the version is known to be one these internals were tested with:
from typer._click.core import Context  # noqa: E402
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param  # noqa: E402
from typer._completion_classes import completion_init  # noqa: E402
from typer._completion_shared import get_completion_script  # noqa: E402
from typer.core import _TyperParameter  # noqa: E402

SWITCH = "OVBACKUP_TYPER_COERCION"
# Integers up to this size convert to float exactly, as pydantic's f64 comparison needs for a bound.
_EXACT_IN_FLOAT = 2**53

Convert = Callable[[Any], Any]


class NotNativeError(Exception):
    """The value is not one the native conversion is sure to treat as the adapter does."""


def _plain_digits(text: str, most: int) -> bool:
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def _is_plain_int(text: str) -> bool:
    return _plain_digits(text.removeprefix("-"), 18)


def _is_plain_float(text: str) -> bool:
    whole, dot, fraction = text.removeprefix("-").partition(".")
    return _plain_digits(whole, 15) and (not dot or _plain_digits(fraction, 15))


def _within(number: float, low: float | None, high: float | None) -> Any:
    # Out of bounds: the adapter says so, in its words.
    if (low is not None and number < low) or (high is not None and number > high):
        raise NotNativeError
    return number


def _convert_str(value: Any) -> Any:
    if type(value) is not str:  # e.g. bytes, which typer decodes its own way
        raise NotNativeError
    return value


def _convert_bool(value: Any) -> Any:
    if type(value) is not bool:  # e.g. "yes", "off": pydantic's list of spellings
        raise NotNativeError
    return value


def _int_converter(low: Any, high: Any) -> Convert | None:
    if any(bound is not None and type(bound) is not int for bound in (low, high)):
        return None

    def convert(value: Any) -> Any:
        if type(value) is int:
            return _within(value, low, high)
        if type(value) is str and _is_plain_int(value):
            return _within(int(value), low, high)
        raise NotNativeError

    return convert


def _float_converter(low: Any, high: Any) -> Convert | None:
    for bound in (low, high):
        if bound is None or (type(bound) is float and math.isfinite(bound)):
            continue
        if type(bound) is int and abs(bound) <= _EXACT_IN_FLOAT:
            continue
        return None

    def convert(value: Any) -> Any:
        if type(value) is float and math.isfinite(value):
            return _within(value, low, high)
        if type(value) is int and abs(value) <= _EXACT_IN_FLOAT:
            return _within(float(value), low, high)
        if type(value) is str and _is_plain_float(value):
            return _within(float(value), low, high)
        raise NotNativeError

    return convert


def _leaf_converter(annotation: Any, descriptor: TypeDescriptor) -> Convert | None:
    info = descriptor.parameter_info
    if annotation is str:
        return _convert_str
    if annotation is bool:
        return _convert_bool
    if annotation is int:
        return _int_converter(info.min, info.max)
    if annotation is float:
        return _float_converter(info.min, info.max)
    return None


def native_converter(descriptor: TypeDescriptor) -> Convert | None:
    """The native conversion for a parameter, or None when its values must all go to typer's adapter."""
    info = descriptor.parameter_info
    if info.parser is not None or info.clamp or descriptor.file_annotation is not None:
        return None
    if not descriptor.is_list:
        return _leaf_converter(descriptor.annotation, descriptor)
    (item_type,) = get_args(descriptor.annotation)
    convert_item = _leaf_converter(item_type, descriptor)
    if convert_item is None:
        return None

    def convert_list(value: Any) -> Any:
        if type(value) not in (tuple, list):
            raise NotNativeError
        return [convert_item(item) for item in value]

    return convert_list


@dataclass(frozen=True)
class _Deferred(RuntimeParam):
    convert: Convert | None

    # RuntimeParam.coerce has already answered None (or () for a repeatable option) itself.
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if ctx.resilient_parsing:
            return value
        if self.convert is not None:
            try:
                return self.convert(value)
            except NotNativeError:
                pass
        real = build_runtime_param(param.type_descriptor)
        param._runtime_param = real
        return real.coerce(value, param=param, ctx=ctx)


def _get_runtime_param(self: _TyperParameter) -> RuntimeParam:
    if self._runtime_param is None:
        descriptor = self.type_descriptor
        self._runtime_param = _Deferred(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            convert=native_converter(descriptor),
        )
    return self._runtime_param


def defer_coercion() -> None:
    """Make every typer parameter start with the stand-in described above (unless switched off)."""
    if os.environ.get(SWITCH) == "pydantic":
        return
    # On the class, not on each parameter of the app: typer creates each command's -h/--help option only
    # while parsing, and that option, left out, is None too.
    _TyperParameter.get_runtime_param = _get_runtime_param  # type: ignore[method-assign]


def register_completion() -> None:
    """Register typer's bash/zsh/fish completion classes (typer does it only with add_completion=True,
    which would also put --install-completion in ovbackup's help)."""
    completion_init()


def completion_script(prog_name: str, complete_var: str, shell: str) -> str:
    """typer's completion script for ``shell``."""
    return str(get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell))
