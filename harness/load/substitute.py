"""Put `${...}` values into an experiment's data, and keep or drop what a `when:` decides.

Everything outside `expect:` and `about:` builds the lab, so there only the cell's names are known;
under them the run's facts (kernel, HOST.sysctl) may be read too, and any mapping may carry
`when: CONDITION` (an expectation, a packet pattern, a timing, a host's whole block): kept without
its `when:` where the condition holds, left out where it does not."""
from __future__ import annotations

import copy
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.load.expressions import FactMissing, FactsNotHere, condition, evaluate
from harness.load.facts import KernelVersion
from harness.load.facts import FactsUse, RunFacts
from harness.load.yaml_lines import LineDict, item_line

FACT_KEYS = ("expect", "about", "let")   # the parts of a file worked out once the lab is up
_ERRORS = (ArithmeticError, ValueError, TypeError, SyntaxError, RecursionError, MemoryError)
_DROPPED = object()
_FUNCTIONS = ("ceil", "floor", "log2")


@dataclass
class Substitution:
    names: dict[str, float]
    path: Path
    facts: RunFacts | None = None                 # None: outside expect:, or no facts yet
    use: FactsUse = field(default_factory=FactsUse)
    every_branch: bool = False                    # every when: taken (worked out, then kept): to check them all

    def data(self, data: LineDict, fact_parts: bool) -> LineDict:
        """The experiment's top-level data with either the lab's parts (everything but expect: and
        about:) or the fact parts substituted; the others are left as they are. The fact parts'
        pass first works out `let:` (named values, in order) and removes it."""
        out = copy.copy(data)
        if fact_parts and "let" in out:
            self._let(out.pop("let"), data.line_of("let"))
        for key in list(out):
            if (key in FACT_KEYS) == fact_parts:
                new = self.value(out[key], data.line_of(key), in_expect=fact_parts)
                if key == "expect" and (new is _DROPPED or isinstance(new, dict) and not new):
                    where = f" on kernel {self.facts.kernel}" if self.facts is not None and self.use.kernel else ""
                    raise UserError(f"every expectation is left out{where} (by when:): a run would judge nothing.",
                                    file=str(self.path), line=data.line_of(key),
                                    fix="put when: on the expectations inside expect:, and leave at least one for "
                                        "every kernel the file is meant for.")
                out[key] = None if new is _DROPPED else new
        return out

    def value(self, node, line: int, in_expect: bool = False):
        if isinstance(node, LineDict):
            return self._mapping(node, in_expect)
        if isinstance(node, list):
            out = copy.copy(node)           # a LineList keeps its item lines
            done = [(self.value(v, item_line(node, i, line), in_expect), item_line(node, i, line))
                    for i, v in enumerate(node)]
            out[:] = [v for v, _ in done if v is not _DROPPED]
            if hasattr(node, "item_lines"):        # an item left out by when: takes its line with it
                out.item_lines = [ln for v, ln in done if v is not _DROPPED]
            return out
        if isinstance(node, str) and "${" in node:
            return self._text(node, line, in_expect)
        return node

    def _let(self, let: object, line: int) -> None:
        """`let: {linear: default(client.tcp_syn_linear_timeouts, 0), gives_up: 2**4 - 1 + linear}`:
        each a number worked out with the facts, usable by the ones after it and under expect:."""
        if not isinstance(let, LineDict):
            raise UserError("let: is a mapping of names to expressions.", file=str(self.path), line=line,
                            fix="write e.g. let: {linear: \"default(client.tcp_syn_linear_timeouts, 0)\"}.")
        for name, text in let.items():
            where = let.line_of(name)
            if not isinstance(name, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,39}", name) or name in ("kernel", "repeat"):
                raise UserError(f"let: {str(name)[:40]!r} is not a name for a value.", file=str(self.path), line=where,
                                fix="use lower-case letters, digits and _ (not kernel or repeat).")
            if name in self.names:
                raise UserError(f"let: {name} is already a name here (the matrix's or an earlier let:).",
                                file=str(self.path), line=where, fix="give the value another name.")
            if keyword.iskeyword(name) or name in ("true", "false", "default", "min", "max", *_FUNCTIONS):
                raise UserError(f"let: {name} is a word of the language, not a name for a value.", file=str(self.path),
                                line=where, fix="give the value another name.")
            expression = _bare(text)
            try:
                value = evaluate(expression, self.names, self.facts, self.use)
                _number(value)                      # refuses true/false and the kernel alone, with the reason
                self.names[name] = value
            except _ERRORS as exc:
                raise self._error(str(text), exc, where) from None

    def _mapping(self, node: LineDict, in_expect: bool):
        if in_expect and "when" in node:
            if not self.condition(node["when"], node.line_of("when")):
                return _DROPPED
        out = copy.copy(node)
        if in_expect:
            out.pop("when", None)
        for key in list(out):
            new = self.value(out[key], node.line_of(key), in_expect)
            if new is _DROPPED:
                del out[key]
            else:
                out[key] = new
        return out

    def _facts(self, in_expect: bool) -> RunFacts | None:
        return self.facts if in_expect else None

    def condition(self, text: object, line: int) -> bool:
        """A `when:` (a bare expression, or one ${...}, or true/false)."""
        if isinstance(text, bool):
            return text
        if not isinstance(text, str):
            raise UserError(f"when: {str(text)[:40]!r} is not a condition.", file=str(self.path), line=line,
                            fix="write a comparison, e.g. when: kernel >= 6.12, or when: default(client.tcp_syn_linear_timeouts, 0) > 0.")
        expression = _bare(text)
        try:
            return condition(expression, self.names, self.facts, self.use) or self.every_branch
        except _ERRORS as exc:
            raise self._error(text, exc, line) from None

    def _text(self, node: str, line: int, in_expect: bool) -> str:
        def one(match: re.Match) -> str:
            return _number(evaluate(match.group(1), self.names, self._facts(in_expect), self.use))
        try:
            return re.sub(r"\$\{([^}]*)\}", one, node)
        except _ERRORS as exc:
            raise self._error(node, exc, line) from None

    def _error(self, node: str, exc: Exception, line: int) -> UserError:
        shown = node if len(node) <= 80 else node[:77] + "..."
        if isinstance(exc, FactsNotHere):
            fix = "use kernel and HOST.sysctl in expect: (and about:) only; elsewhere give a value that suits every kernel."
        elif isinstance(exc, FactMissing):
            fix = "give the value to use where the kernel lacks the setting, e.g. ${default(client.tcp_syn_linear_timeouts, 0)}."
        else:
            fix = ("write ${...} with + - * / **, comparisons, A if C else B, min/max/ceil/floor/log2/default() over "
                   "the matrix's names and let:"
                   + (", kernel and HOST.sysctl" if self.facts is not None else "") + ", e.g. ${2**(tcp_syn_retries+1)-1}s.")
        return UserError(f"cannot work out {shown!r}: {exc}.", file=str(self.path), line=line, fix=fix)


def _bare(text: object) -> str:
    """A `when:` or `let:` value: an expression, with or without ${...} around it."""
    expression = str(text).strip()
    if expression.startswith("${") and expression.endswith("}") and expression.count("${") == 1:
        expression = expression[2:-1]
    return expression


def _number(value) -> str:
    if isinstance(value, KernelVersion):
        raise ValueError("kernel is a version, not a number: compare it (kernel >= 6.12)")
    if isinstance(value, bool):
        raise ValueError("it is true or false, not a number: use it in when: or in A if CONDITION else B")
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
