"""The `calculate` tool's arithmetic: what upstream's `eval` computes, without ever hanging.

Upstream checks that the expression holds only `0123456789+-*/(). ` and then returns
`str(round(float(eval(expression, {"__builtins__": None}, {})), 2))`. With those characters
`eval` can still be asked for `9**9**9`, a number of about 1.2 billion bits that takes minutes
and gigabytes to build. Here the expression is compiled exactly as `eval` compiles it (so a
syntax error reads the same), then its syntax tree is evaluated with Python's own operators in
Python's order (so every value and every error message is the one `eval` would give), except
that an integer result larger than `MAX_INT_BITS` is refused before it is built, with the text
upstream gives when it converts such a number to a float: "int too large to convert to float".

The one documented difference: an expression whose intermediate integer exceeds the bound but
whose final value would fit (`7**400000 // 7**399999`) is refused here and computed upstream.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

ALLOWED = "0123456789+-*/(). "
MAX_INT_BITS = 1 << 18  # 262,144 bits (~78,900 digits): the largest op takes milliseconds
TOO_LARGE = "int too large to convert to float"

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def calculate(expression: Any) -> str:
    """Upstream's `calculate`, result for result and error for error (see the module doc)."""
    if not all(char in ALLOWED for char in expression):
        raise ValueError("Invalid characters in expression")
    if not isinstance(expression, str):
        # A list or dict of allowed characters passes the check above; eval then refuses it.
        raise TypeError("eval() arg 1 must be a string, bytes or code object")
    source = expression.lstrip(" \t")  # eval() drops leading spaces and tabs of a string
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # "'int' object is not callable; ..."
        compile(source, "<string>", "eval", dont_inherit=True)  # eval's own syntax errors
        tree = ast.parse(source, "<string>", "eval")
    return str(round(float(_evaluate(tree.body)), 2))


def _evaluate(root: ast.expr) -> Any:
    """Post-order evaluation with an explicit stack: a tree deep enough to compile is never
    too deep to evaluate. Operands are evaluated left to right, as the bytecode does."""
    stack: list[tuple[ast.expr, bool]] = [(root, False)]
    values: list[Any] = []
    while stack:
        node, ready = stack.pop()
        if isinstance(node, ast.Constant):
            values.append(node.value)
            continue
        children = _children(node)
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
            continue
        args = values[len(values) - len(children) :]
        del values[len(values) - len(children) :]
        values.append(_apply(node, args))
    return values[0]


def _children(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Tuple):
        return list(node.elts)
    if isinstance(node, ast.Call) and len(node.args) + len(node.keywords) <= 1:
        inner = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
        return [node.func, *inner, *(k.value for k in node.keywords)]
    # Unreachable with the allowed characters (no names, commas, brackets or comparisons).
    raise ValueError("Invalid expression")


def _apply(node: ast.expr, args: list[Any]) -> Any:
    if isinstance(node, ast.BinOp):
        left, right = args
        _check_size(node.op, left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](args[0])
    if isinstance(node, ast.Tuple):
        return tuple(args)
    assert isinstance(node, ast.Call)
    func, *rest = args
    if node.keywords:  # f(**x)
        return func(**rest[0])
    if node.args and isinstance(node.args[0], ast.Starred):  # f(*x)
        return func(*rest[0])
    return func(*rest)


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse an integer product or power of more than MAX_INT_BITS bits before building it
    (sums and quotients are never larger than their operands plus one bit)."""
    if type(left) is not int or type(right) is not int:
        return
    if isinstance(op, ast.Mult):
        bits = left.bit_length() + right.bit_length() - 1
    elif isinstance(op, ast.Pow) and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left)) if right <= MAX_INT_BITS else math.inf
    else:
        return
    if bits > MAX_INT_BITS:
        raise OverflowError(TOO_LARGE)
