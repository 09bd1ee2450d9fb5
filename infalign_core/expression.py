"""A user's map T(x) as a small expression tree: parsed through an ``ast`` whitelist, never eval'd.

The grammar is numbers, the variable ``x``, ``+ − * / **``, unary minus and the functions
``exp``, ``log`` and ``sqrt``. Anything else (names, attributes, calls of other functions,
subscripts, comprehensions, strings) is refused before any evaluation happens. SymPy's
``parse_expr`` would be the obvious tool, but it calls ``eval`` on the text, so it is not used.

The tree is evaluated with numpy and differentiated symbolically (:func:`derivative`), so
T′ is exact rather than a finite difference.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from infalign_core.errors import InfAlignError

MAX_LENGTH = 200
MAX_NODES = 80
FUNCTIONS = ("exp", "log", "sqrt")
_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


@dataclass(frozen=True)
class Node:
    """One node: ``op`` is num, x, add, sub, mul, div, pow, neg, exp, log or sqrt."""

    op: str
    args: tuple[Node, ...] = ()
    value: float = 0.0

    def __str__(self) -> str:
        """The node written back as an expression in x."""
        if self.op == "num":
            return f"{self.value:g}"
        if self.op == "x":
            return "x"
        if self.op == "neg":
            return f"(-{self.args[0]})"
        if self.op in FUNCTIONS:
            return f"{self.op}({self.args[0]})"
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[self.op]
        return f"({self.args[0]} {symbol} {self.args[1]})"


def _num(value: float) -> Node:
    return Node("num", value=float(value))


def _convert(node: ast.AST) -> Node:
    """The whitelist: turn an ast node into a Node, or refuse it."""
    if isinstance(node, ast.Expression):
        return _convert(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _num(node.value)
    if isinstance(node, ast.Name) and node.id == "x":
        return Node("x")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _convert(node.operand)
        return Node("neg", (inner,)) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return Node(_BINARY[type(node.op)], (_convert(node.left), _convert(node.right)))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        return Node(node.func.id, (_convert(node.args[0]),))
    if isinstance(node, ast.Name):
        raise InfAlignError(f"unknown name {node.id!r}: use x and the functions {', '.join(FUNCTIONS)}")
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise InfAlignError(
            f"the call {name}(…) is not allowed: only {', '.join(FUNCTIONS)} with one argument"
        )
    raise InfAlignError(
        f"{type(node).__name__} is not allowed: use numbers, x, + - * / **, and {', '.join(FUNCTIONS)}"
    )


def parse(text: str) -> Node:
    """Parse an expression in x through the whitelist (no eval)."""
    text = text.strip()
    if not text:
        raise InfAlignError("the expression is empty: write T in x, e.g. x**3")
    if len(text) > MAX_LENGTH:
        raise InfAlignError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise InfAlignError(f"cannot parse the expression {text!r}: {err.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > 3 * MAX_NODES:
        raise InfAlignError(f"the expression is too large (at most about {MAX_NODES} terms)")
    return _convert(tree)


def evaluate_tree(node: Node, x: np.ndarray) -> np.ndarray:
    """The tree's value at x (vectorised, float64; invalid points give NaN or inf, never an exception)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.broadcast_to(_evaluate(node, x), x.shape).astype(np.float64)


def _evaluate(node: Node, x: np.ndarray) -> np.ndarray:
    op, args = node.op, node.args
    if op == "num":
        return np.float64(node.value)
    if op == "x":
        return x
    values = [_evaluate(a, x) for a in args]
    if op == "neg":
        return -values[0]
    if op == "exp":
        return np.exp(values[0])
    if op == "log":
        return np.log(values[0])
    if op == "sqrt":
        return np.sqrt(values[0])
    a, b = values
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    return np.power(a, b)


def _is(node: Node, value: float) -> bool:
    return node.op == "num" and node.value == value


def _add(a: Node, b: Node) -> Node:
    if _is(a, 0):
        return b
    if _is(b, 0):
        return a
    return Node("add", (a, b))


def _mul(a: Node, b: Node) -> Node:
    if _is(a, 0) or _is(b, 0):
        return _num(0)
    if _is(a, 1):
        return b
    if _is(b, 1):
        return a
    return Node("mul", (a, b))


def _depends_on_x(node: Node) -> bool:
    return node.op == "x" or any(_depends_on_x(a) for a in node.args)


def derivative(node: Node) -> Node:
    """d/dx of the tree, by the usual rules (chain, product, quotient, power)."""
    op, args = node.op, node.args
    if op == "num":
        return _num(0)
    if op == "x":
        return _num(1)
    if op == "neg":
        return Node("neg", (derivative(args[0]),))
    if op == "exp":
        return _mul(node, derivative(args[0]))
    if op == "log":
        return Node("div", (derivative(args[0]), args[0]))
    if op == "sqrt":
        return Node("div", (derivative(args[0]), _mul(_num(2), node)))
    a, b = args
    da, db = derivative(a), derivative(b)
    if op == "add":
        return _add(da, db)
    if op == "sub":
        return Node("sub", (da, db))
    if op == "mul":
        return _add(_mul(da, b), _mul(a, db))
    if op == "div":
        return Node("div", (Node("sub", (_mul(da, b), _mul(a, db))), Node("pow", (b, _num(2)))))
    # a**b: with b free of x it is b·a^(b−1)·a′ (valid for a ≤ 0 too); otherwise a^b·(b′ log a + b a′/a).
    if not _depends_on_x(b):
        return _mul(_mul(b, Node("pow", (a, Node("sub", (b, _num(1)))))), da)
    return _mul(node, _add(_mul(db, Node("log", (a,))), Node("div", (_mul(b, da), a))))
