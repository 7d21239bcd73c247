"""Keep pydantic out of the runs that coerce nothing: ``ovbackup COMMAND --help`` and every TAB completion.

typer (0.29) checks each parameter value with a pydantic ``TypeAdapter`` and builds that adapter on the
first value the parameter sees, even ``None``: every global option left out of a command line paid for
importing pydantic (about 150 ms, more than all the rest of start-up). Here each typer parameter starts with a
stand-in that answers ``None`` itself (as typer does, without the adapter), passes values through while a
shell completion parses resiliently (nothing is converted there, values only decide what to offer), and
hands any other value to the adapter typer would have built, so real values are checked exactly as before.

This reaches into typer's internals: if they move, importing this module fails, ``main`` goes on
without it and start-up is merely slower (tests/test_startup_imports.py notices).
"""

from dataclasses import dataclass
from typing import Any

from typer._click.core import Context
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import _TyperParameter


@dataclass(frozen=True)
class _Deferred(RuntimeParam):
    # RuntimeParam.coerce has already answered None (or () for a repeatable option) itself.
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if ctx.resilient_parsing:
            return value
        real = build_runtime_param(param.type_descriptor)
        param._runtime_param = real
        return real.coerce(value, param=param, ctx=ctx)


def _get_runtime_param(self: _TyperParameter) -> RuntimeParam:
    if self._runtime_param is None:
        descriptor = self.type_descriptor
        self._runtime_param = _Deferred(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
    return self._runtime_param


def defer_coercion() -> None:
    """Make every typer parameter start with the stand-in described above."""
    # On the class, not on each parameter of the app: typer creates each command's -h/--help option only
    # while parsing, and that option, left out, is None too.
    _TyperParameter.get_runtime_param = _get_runtime_param  # type: ignore[method-assign]
