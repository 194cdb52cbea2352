"""Unit tests for code records: check lines from resources/code_*.yaml made into assert statements.

A snippet kind lists its tests as lines. `= expr` asserts that expr equals what the kind's
reference body (its first) returns, `~ expr` the same within a relative 1e-6 for floats, and
`! Error: statement` that the statement raises Error; any other line is a statement kept as it is.
Expected values come from running the reference, so a second body that disagrees with the first
fails its own record's tests, which the corpus's unit tests execute for every record.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import types
from collections.abc import Sequence
from typing import Any

# Defined at the top of a test only when it compares floats.
_CLOSE_HELPER = """def _close(actual, expected, tol=1e-6):
    if isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(_close(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(_close(actual[k], expected[k]) for k in expected)
    if expected is None or isinstance(expected, (str, bool)):
        return actual == expected
    return abs(actual - expected) <= tol * max(1.0, abs(expected))

"""


class CheckError(ValueError):
    """A check line the reference body cannot satisfy: a bug in the snippet kind, not in a record."""


def _run(source: str, namespace: dict[str, Any]) -> None:
    # The reference may print (a timing context manager does); that output is not part of a test.
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "<reference>", "exec"), namespace)


def _evaluate(expr: str, namespace: dict[str, Any]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return eval(compile(expr, "<check>", "eval"), namespace)


def _operand(expr: str) -> str:
    """expr, parenthesised where `expr == value` would otherwise chain or bind differently."""
    node = ast.parse(expr, mode="eval").body
    simple = (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.List, ast.Tuple)
    return expr if isinstance(node, simple) else f"({expr})"


def _literal(value: Any) -> str:
    text = repr(value)
    ast.literal_eval(text)  # a value without a literal form cannot be an expected value
    return text


def render_tests(reference: str, lines: Sequence[str]) -> str:
    """Assert statements for lines, their expected values computed by running reference."""
    # A real module object: dataclasses and typing look their class's module up in sys.modules.
    module = types.ModuleType("_reference_snippet")
    sys.modules[module.__name__] = module
    try:
        return _render(reference, lines, module.__dict__)
    finally:
        del sys.modules[module.__name__]


def _render(reference: str, lines: Sequence[str], namespace: dict[str, Any]) -> str:
    _run(reference, namespace)
    out: list[str] = []
    pending: list[str] = []
    close = False

    def flush() -> None:
        if pending:
            _run("\n".join(pending), namespace)
            out.extend(pending)
            pending.clear()

    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind in ("=", "~"):
            flush()
            try:
                value = _evaluate(rest, namespace)
                expected = _literal(value)
            except Exception as exc:
                raise CheckError(f"check '{line}' fails on the reference: {exc!r}") from exc
            if kind == "=":
                out.append(f"assert {_operand(rest)} == {expected}")
            else:
                close = True
                out.append(f"assert _close({rest}, {expected})")
        elif kind == "!":
            flush()
            error, _, statement = rest.partition(": ")
            try:
                _run(statement, namespace)
            except Exception as exc:
                if type(exc).__name__ != error:
                    raise CheckError(f"check '{line}' raised {type(exc).__name__} on the reference") from exc
            else:
                raise CheckError(f"check '{line}' raised nothing on the reference")
            out += ["try:", f"    {statement}", f"except {error}:", "    pass", "else:"]
            out.append(f'    raise AssertionError("expected {error} from {statement}")')
        else:
            pending.append(line)
    flush()
    return (_CLOSE_HELPER if close else "") + "\n".join(out) + "\n"


def _parameters(args: ast.arguments) -> str:
    """`text, limit=3`: names and defaults as a caller reads them, without annotations or self."""
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = [
        a.arg if d is None else f"{a.arg}={ast.unparse(d)}" for a, d in zip(positional, defaults, strict=True)
    ]
    parts = [p for p in parts if p not in ("self", "cls")]
    if args.vararg:
        parts.append(f"*{args.vararg.arg}")
    return ", ".join(parts)


def signature(code: str, entry_point: str) -> tuple[str, list[str]]:
    """(`name(params)` of the entry point, `method(params)` of a class's public methods)."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return f"{entry_point}({_parameters(node.args)})", []
        if isinstance(node, ast.ClassDef) and node.name == entry_point:
            init = ""
            methods = []
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                if item.name == "__init__":
                    init = _parameters(item.args)
                    # Public attributes set in __init__ are part of the interface tests may read.
                    methods += [
                        t.attr
                        for statement in ast.walk(item)
                        if isinstance(statement, ast.Assign | ast.AnnAssign)
                        for t in (
                            statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                        )
                        if isinstance(t, ast.Attribute)
                        and not t.attr.startswith("_")
                        and t.attr not in methods
                    ]
                elif not item.name.startswith("_"):
                    is_property = any(getattr(d, "id", getattr(d, "attr", "")) in ("property", "setter")
                                      for d in item.decorator_list)  # fmt: skip
                    described = item.name if is_property else f"{item.name}({_parameters(item.args)})"
                    if described not in methods:
                        methods.append(described)
            if not init:  # a dataclass: its fields are the constructor's parameters
                init = ", ".join(i.target.id for i in node.body if isinstance(i, ast.AnnAssign))
            return f"{entry_point}({init})", methods
    raise ValueError(f"code defines no top-level '{entry_point}'")
