"""The magics' side of the shared grammar (nbsage.arguments): argument lists onto IPython's
magic_arguments, a line parsed with unknown arguments refused, and errors as one-line UsageErrors.

    @line_magic
    @takes(arguments.DEPLOY, [arg("job", nargs="?")])
    @one_line()
    def sm_deploy(self, line):
        args = parse(self.sm_deploy, line)
"""
from __future__ import annotations

import functools

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from nbsage.arguments import one_line as _one_line_text
from nbsage.arguments import unquote
from nbsage.errors import NBSageError, did_you_mean


def takes(*argument_lists):
    """Decorator: the magic takes these arguments, in this order (what stacked @argument lines do)."""
    def decorate(func):
        for flags, kwargs in reversed([spec for arguments in argument_lists for spec in arguments]):
            func = argument(*flags, **kwargs)(func)
        return magic_arguments()(func)
    return decorate


def parse(magic, line: str):
    """The line's arguments, quotes taken off each value; an argument the magic does not take is a
    UsageError naming it (argparse alone would take it as a positional value or ignore a typo's intent)."""
    parser = magic.parser
    args, unknown = parser.parse_argstring(line, partial=True)
    if unknown:
        flags = [s for a in parser._actions for s in a.option_strings]
        first = next((u for u in unknown if u.startswith("-")), unknown[0])
        hint = did_you_mean(first.split("=")[0], flags) if first.startswith("-") else ""
        raise UsageError(f"%{parser.prog} does not take {' '.join(unknown)}{hint} "
                         f"(its options are {', '.join(flags)}; see %{parser.prog}?)")
    for key, value in vars(args).items():
        setattr(args, key, unquote(value))
    return args


def one_line(*also: type[BaseException]):
    """Decorator: NBSageError (and the `also` exceptions) -> UsageError, which IPython prints as one
    line without a traceback."""
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except NBSageError as e:
                raise UsageError(_one_line_text(e)) from None  # e.g. a multi-line FailureReason
            except also as e:
                raise UsageError(f"{method.__name__}: {_one_line_text(e)}") from None
        return wrapper
    return decorate
