"""The `${...}` language: arithmetic over a cell's names, and — in expectations — the run's facts.

    ${2**(tcp_syn_retries+1) - 1}s                     the matrix's names (a sysctl's last part, a link
                                                        parameter, repeat)
    ${1 if kernel >= 6.12 else 2}                      the kernel, compared as a version (6.12 > 6.2;
                                                        three parts in quotes: kernel >= "6.12.58")
    ${default(client.tcp_syn_linear_timeouts, 0)}       a host's sysctl as read back in the lab; default()
                                                        gives the value where the kernel lacks the setting
    when: kernel < 6.12                                 keeps an expectation only where it holds

Comparisons, and/or/not, `A if C else B`, min(), max(), ceil(), floor(), log2() and default() are
the whole language (a file's `let:` names values worked out this way, in order); every
step is bounded (see _bounded) so no expression can hang or overflow. Nothing else is evaluated."""
from __future__ import annotations

import ast
import math
import operator
import re

from harness.load.facts import FactsUse, KernelVersion, RunFacts, version_of
from harness.load.known_sysctls import BY_SHORT_NAME

MAX_EXPRESSION = 200           # characters inside one ${...}
MAX_MAGNITUDE = 1e18           # any number met while working one out (a duration in ns fits)

_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_MATH = {"ceil": math.ceil, "floor": math.floor, "log2": math.log2}


def _as_series(a, b):
    """A kernel compared with a version of fewer parts is cut to as many: `kernel <= 6.12` holds
    for every 6.12.x, `kernel > 6.12` only from 6.13 on (a version written out names a series)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        n = min(len(a), len(b))
        return a[:n], b[:n]
    return a, b
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}


class FactMissing(ValueError):
    """A host's sysctl the kernel lacks, read without default()."""


class FactsNotHere(ValueError):
    """`kernel` or HOST.sysctl outside expect: (the lab is built from the rest before they are known)."""


def _bounded(value):
    """Every intermediate result stays a real, finite number of sane size: no complex, no inf,
    no 10**10**10 (which would hang the interpreter computing it)."""
    if isinstance(value, complex) or not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"a number in it is beyond ±{MAX_MAGNITUDE:g}")
    return value


def _power(base, exponent):
    """base ** exponent, refused before computing when the result would be huge or complex."""
    if base < 0 and not float(exponent).is_integer():
        raise ValueError("a negative number to a fractional power is not a real number")
    if abs(base) > 1 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ValueError(f"{base:g}**{exponent:g} is beyond ±{MAX_MAGNITUDE:g}")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError("0 to a negative power")
    return base ** exponent


_ARITHMETIC[ast.Pow] = _power


def _sysctl_number(text: str, shown: str):
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{shown} reads {text!r}, not one number") from None
    return int(number) if number.is_integer() else number


class _Evaluator:
    def __init__(self, expression: str, names: dict, facts: RunFacts | None):
        self.text, self.names, self.facts = expression, names, facts

    def fail(self, node, why: str = "") -> ValueError:
        known = ", ".join(sorted(self.names)) or "numbers"
        return ValueError(why or f"'{ast.unparse(node)[:60]}' is not arithmetic over {known}"
                          + ("" if self.facts is None else ", kernel and HOST.sysctl"))

    def number(self, node):
        value = self.any(node)
        if isinstance(value, KernelVersion):
            raise self.fail(node, "kernel is a version: compare it (kernel >= 6.12), it is not a number")
        if isinstance(value, bool):
            raise self.fail(node, f"'{ast.unparse(node)[:40]}' is true or false, not a number: write A if CONDITION else B")
        return value

    def any(self, node):
        """A number, a truth value (from a comparison) or the kernel's version."""
        kind = type(node).__name__
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise self.fail(node)
        return handler(node)

    def _Expression(self, node):
        return self.any(node.body)

    def _Constant(self, node):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _bounded(node.value)
        raise self.fail(node)

    def _Name(self, node):
        if node.id in self.names:
            return _bounded(self.names[node.id])
        if node.id == "kernel":
            if self.facts is None:
                raise FactsNotHere("kernel is known once the lab is up: it may be used under expect: only")
            return KernelVersion(self.facts.kernel)
        if node.id in ("true", "false"):
            return node.id == "true"
        raise self.fail(node)

    def _Attribute(self, node):
        if not isinstance(node.value, ast.Name):
            raise self.fail(node)
        host, short = node.value.id, node.attr
        shown = f"{host}.{short}"
        if self.facts is None:
            raise FactsNotHere(f"{shown} is read back once the lab is up: it may be used under expect: only")
        name = BY_SHORT_NAME.get(short)
        if name is None:
            raise ValueError(f"{shown}: no kernel knows a sysctl {short!r} under net.ipv4 or net.core")
        value = self.facts.sysctl(host, name)
        if value is None:
            raise FactMissing(f"kernel {self.facts.kernel} has no {name}: write default({shown}, VALUE)")
        return _bounded(_sysctl_number(value, shown))

    def _BinOp(self, node):
        if type(node.op) not in _ARITHMETIC:
            raise self.fail(node)
        return _bounded(_ARITHMETIC[type(node.op)](self.number(node.left), self.number(node.right)))

    def _UnaryOp(self, node):
        if isinstance(node.op, ast.Not):
            return not self.truth(node.operand)
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.fail(node)
        value = self.number(node.operand)
        return -value if isinstance(node.op, ast.USub) else value

    def truth(self, node) -> bool:
        value = self.any(node)
        if isinstance(value, KernelVersion):
            raise self.fail(node, "kernel alone is not true or false: compare it (kernel >= 6.12)")
        return bool(value)

    def _BoolOp(self, node):
        if isinstance(node.op, ast.And):
            return all(self.truth(v) for v in node.values)
        return any(self.truth(v) for v in node.values)

    def _IfExp(self, node):
        return self.any(node.body) if self.truth(node.test) else self.any(node.orelse)

    def _Compare(self, node):
        nodes = [node.left, *node.comparators]
        values = [n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else self.any(n) for n in nodes]
        for i, op in enumerate(node.ops):
            if type(op) not in _COMPARE:
                raise self.fail(node)
            a, b = _as_series(self._side(nodes[i], values[i], values[i + 1]),
                              self._side(nodes[i + 1], values[i + 1], values[i]))
            if not _COMPARE[type(op)](a, b):
                return False
        return True

    def _side(self, node, value, other):
        """A side of a comparison; against the kernel, a number is read as a version from its text
        (6.12 is 6.12, not 6.120 < 6.2)."""
        if isinstance(value, KernelVersion):
            return value.version
        if isinstance(other, KernelVersion):
            text = value if isinstance(value, str) else ast.get_source_segment(self.text, node) or ""
            if not isinstance(node, ast.Constant) or not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,6}){0,3}", text.strip()):
                raise self.fail(node, f"compare kernel with a version written out (6.12, or \"6.12.58\"), "
                                      f"not {ast.unparse(node)[:40]}")
            return version_of(text)
        if isinstance(value, str):
            raise self.fail(node, f"a text ({value[:20]!r}) is compared only with kernel (kernel >= \"6.12.1\")")
        return value

    def _Call(self, node):
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(node)
        name, args = node.func.id, node.args
        if name == "default" and len(args) == 2:
            try:
                return self.number(args[0])
            except FactMissing:
                return self.number(args[1])
        if name in ("min", "max") and args:
            return (min if name == "min" else max)(self.number(a) for a in args)
        if name in _MATH and len(args) == 1:
            return _bounded(_MATH[name](self.number(args[0])))
        raise self.fail(node, f"{name}() is not known here: the functions are default(HOST.sysctl, VALUE), min(), max(), "
                              f"{', '.join(f'{f}()' for f in _MATH)}")


def _parse(expression: str, facts: RunFacts | None, use: FactsUse | None) -> tuple[str, ast.Expression]:
    """The expression's tree; where facts are read, every fact it names is noted in `use`, in
    every branch (`A if C else B`, default()'s fallback): the lab reads them all back, whichever
    branch its kernel takes."""
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"it is longer than {MAX_EXPRESSION} characters")
    text = expression.strip()
    tree = ast.parse(text, mode="eval")
    if facts is not None and use is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "kernel":
                use.kernel = True
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr in BY_SHORT_NAME:
                use.wants(node.value.id, BY_SHORT_NAME[node.attr])
    return text, tree


def condition(expression: str, names: dict[str, float], facts: RunFacts | None, use: FactsUse | None = None) -> bool:
    """A `when:`: true or false (a comparison, and/or/not, a number); the kernel alone is neither."""
    text, tree = _parse(expression, facts, use)
    return _Evaluator(text, names, facts).truth(tree)


def evaluate(expression: str, names: dict[str, float], facts: RunFacts | None = None, use: FactsUse | None = None):
    """A number (or, from a comparison, True/False): arithmetic over `names`, and over `facts`
    where given (expect: only). Every fact it names is noted in `use` (see _parse)."""
    text, tree = _parse(expression, facts, use)
    return _Evaluator(text, names, facts).any(tree)
