"""``--fail-if`` expressions over the summary, evaluated safely.

An expression is parsed with :mod:`ast` and only these nodes are allowed:
``policy.field`` names (a policy's name with '-' read as '_', a field of
:data:`swarmopt.loadtest.summary.FIELDS`), numbers, comparisons (``<``,
``<=``, ``>``, ``>=``, ``==``, ``!=``, chained too), ``and``, ``or``,
``not`` and unary minus. Nothing is ever passed to ``eval``. A comparison
with NaN (a figure that could not be measured) is false.
Examples: ``thompson.false_rollback_rate > 0.10``,
``rules.slo_attainment < monitor.slo_attainment``.
"""

from __future__ import annotations

import ast
import operator
from typing import Iterable

from swarmopt.loader import InputError
from swarmopt.loadtest.spec import expr_name
from swarmopt.loadtest.summary import FIELDS

_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


def allowed_names(policies: Iterable[str]) -> list[str]:
    """Every ``policy.field`` name an expression may use."""
    return [f"{expr_name(p)}.{f}" for p in policies for f in FIELDS]


def _allowed_text(policies: Iterable[str]) -> str:
    return (f"POLICY.FIELD with POLICY one of {[expr_name(p) for p in policies]} and FIELD one of {list(FIELDS)}")


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def check(expr: str, policies: Iterable[str]) -> ast.Expression:
    """Parse ``expr`` and check every node and name. Raises :class:`InputError`
    (one line: the expression, what is wrong, the allowed names or forms)."""
    policies = list(policies)
    allowed = set(allowed_names(policies))
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"--fail-if '{expr}': not an expression ({exc.msg})") from None
    qualifiers = {id(n.value) for n in ast.walk(tree) if _name(n) is not None}
    for node in ast.walk(tree):
        name = _name(node)
        if id(node) in qualifiers:
            continue
        if name is not None:
            if name not in allowed:
                raise InputError(f"--fail-if '{expr}': unknown name '{name}'; allowed: {_allowed_text(policies)}")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise InputError(f"--fail-if '{expr}': only numbers are allowed as constants, got {node.value!r}")
        elif isinstance(node, ast.Name):
            raise InputError(f"--fail-if '{expr}': unknown name '{node.id}'; allowed: {_allowed_text(policies)}")
        elif not isinstance(node, (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
                                   ast.USub, ast.Load, *_CMP)):
            raise InputError(f"--fail-if '{expr}': '{type(node).__name__}' is not allowed; use policy.field names, "
                             "numbers, comparisons, and, or, not")
    if not isinstance(tree.body, (ast.Compare, ast.BoolOp, ast.UnaryOp)) or (
            isinstance(tree.body, ast.UnaryOp) and not isinstance(tree.body.op, ast.Not)):
        raise InputError(f"--fail-if '{expr}': must be a condition (a comparison, and/or/not of comparisons)")
    return tree


def _eval(node: ast.AST, values: dict[str, float]):
    name = _name(node)
    if name is not None:
        return values[name]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values)
        return (not v) if isinstance(node.op, ast.Not) else -v
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=False):
            right = _eval(comp, values)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    raise TypeError(f"unexpected node {type(node).__name__} (check() admits none)")


def holds(expr: str, summary: dict[str, dict[str, float]]) -> bool:
    """Whether ``expr`` holds over ``summary`` (``{policy: {field: number}}``).
    Raises :class:`InputError` for an expression :func:`check` refuses."""
    tree = check(expr, summary)
    values = {f"{expr_name(p)}.{f}": float(v) for p, fields in summary.items() for f, v in fields.items()}
    return bool(_eval(tree.body, values))
