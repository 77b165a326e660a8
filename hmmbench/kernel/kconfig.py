"""Kernel configuration: .config files, fragments, verification, and why an option was dropped.

``olddefconfig`` silently drops any option whose dependencies are not met (the classic trap:
CONFIG_TEST_HMM lives inside ``if RUNTIME_TESTING_MENU`` and vanishes without it). hmmbench therefore
checks every option the fragments asked for against the final .config and, for each one that did not
take, walks the tree's Kconfig files to name the condition that blocked it: an unmet ``depends on``,
an enclosing ``if``/``menu``, or a prompt-less symbol that only a ``select`` can set.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# ------------------------------------------------------------------ .config and fragments

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """Map ``CONFIG_FOO`` -> value (``y``, ``m``, ``"str"``, ``123``; ``n`` for 'is not set')."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


@dataclass(frozen=True)
class Fragment:
    """A Kconfig fragment file: the options it asks for, in order."""

    path: Path
    text: str

    @property
    def options(self) -> dict[str, str]:
        return parse_config(self.text)


def load_fragments(paths: list[Path]) -> list[Fragment]:
    return [Fragment(p, p.read_text()) for p in paths]


def merged_request(fragments: list[Fragment]) -> dict[str, str]:
    """What the fragments ask for together; a later fragment overrides an earlier one."""
    merged: dict[str, str] = {}
    for frag in fragments:
        merged.update(frag.options)
    return merged


def apply_request(base_config: str, request: dict[str, str]) -> str:
    """The base .config with every requested option replaced or appended (as merge_config.sh -m does)."""
    out: list[str] = []
    pending = dict(request)
    for line in base_config.splitlines():
        stripped = line.strip()
        m = _SET.match(stripped) or _UNSET.match(stripped)
        if m and m.group(1) in pending:
            out.append(render_option(m.group(1), pending.pop(m.group(1))))
        else:
            out.append(line)
    out.extend(render_option(k, v) for k, v in pending.items())
    return "\n".join(out) + "\n"


def render_option(name: str, value: str) -> str:
    return f"# {name} is not set" if value == "n" else f"{name}={value}"


@dataclass(frozen=True)
class Mismatch:
    """An option whose final value differs from what a fragment asked for."""

    option: str
    wanted: str
    got: str
    fragment: str


def verify(final_config: str, fragments: list[Fragment]) -> list[Mismatch]:
    """Every requested option whose value in the final .config is not the requested one."""
    final = parse_config(final_config)
    wanted_from: dict[str, tuple[str, str]] = {}
    for frag in fragments:
        for k, v in frag.options.items():
            wanted_from[k] = (v, frag.path.name)
    bad = []
    for name, (wanted, frag_name) in wanted_from.items():
        got = final.get(name, "n")
        if got != wanted:
            bad.append(Mismatch(name, wanted, got if name in final else "<absent>", frag_name))
    return bad


# ------------------------------------------------------------------ Kconfig expressions


def tristate(value: str | None) -> int:
    """y/m/n (or absent) as 2/1/0, Kconfig's tristate order."""
    return {"y": 2, "m": 1}.get(value or "n", 0)


_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[!()=<>]|"[^"]*"|[A-Za-z0-9_\-.]+)')


def tokenize(expr: str) -> list[str]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot parse Kconfig expression {expr!r} at {expr[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


class ExprEvaluator:
    """Evaluates a Kconfig ``depends on``/``if`` expression against .config values (tristate result)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def symbol_value(self, tok: str) -> str:
        if tok in ("y", "m", "n"):
            return tok
        if tok.startswith('"'):
            return tok.strip('"')
        if re.fullmatch(r"-?\d+|0x[0-9a-fA-F]+", tok):
            return tok
        value = self.values.get(f"CONFIG_{tok}", "n")
        # .config keeps string values quoted (CONFIG_FOO=""); compare them like the quoted constants.
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value

    def evaluate(self, expr: str) -> int:
        self.tokens = tokenize(expr)
        self.pos = 0
        value = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"trailing tokens in {expr!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _or(self) -> int:
        v = self._and()
        while self._peek() == "||":
            self._next()
            v = max(v, self._and())
        return v

    def _and(self) -> int:
        v = self._not()
        while self._peek() == "&&":
            self._next()
            v = min(v, self._not())
        return v

    def _not(self) -> int:
        if self._peek() == "!":
            self._next()
            return 2 - self._not()
        return self._cmp()

    def _cmp(self) -> int:
        if self._peek() == "(":
            self._next()
            v = self._or()
            if self._peek() == ")":
                self._next()
            return v
        left = self._next()
        op = self._peek()
        if op in ("=", "!=", "<", ">", "<=", ">="):
            self._next()
            right = self._next()
            a, b = self.symbol_value(left), self.symbol_value(right)
            try:
                a_n, b_n = int(a, 0), int(b, 0)
                cmp = (a_n > b_n) - (a_n < b_n)
            except ValueError:
                cmp = (a > b) - (a < b)
            result = {"=": cmp == 0, "!=": cmp != 0, "<": cmp < 0, ">": cmp > 0,
                      "<=": cmp <= 0, ">=": cmp >= 0}[op]
            return 2 if result else 0
        return tristate(self.symbol_value(left)) if not left.startswith('"') else 0


def expr_symbols(expr: str) -> list[str]:
    """The symbol names an expression mentions (constants excluded)."""
    out = []
    for tok in tokenize(expr):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok) and tok not in ("y", "m", "n"):
            out.append(tok)
    return out


# ------------------------------------------------------------------ Kconfig indexing


@dataclass
class Definition:
    """One ``config``/``menuconfig`` block of a symbol."""

    symbol: str
    location: str
    has_prompt: bool = False
    depends: list[str] = field(default_factory=list)
    enclosing: list[tuple[str, str]] = field(default_factory=list)  # (kind "if"/"menu"/"choice", expr@loc)


@dataclass
class KconfigIndex:
    """Every symbol's definitions and who selects it, read from a kernel tree's Kconfig files."""

    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    selected_by: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # target -> (by, cond)


_KCONFIG_VARS = {"SRCARCH": "x86", "ARCH": "x86_64", "HEADER_ARCH": "x86"}


def _expand(path: str) -> str | None:
    def sub(m: re.Match[str]) -> str:
        return _KCONFIG_VARS.get(m.group(1), "\0")

    out = re.sub(r"\$\(([A-Za-z_]+)\)", sub, path)
    return None if "\0" in out or "$(" in out else out


def index_kconfig(srctree: Path, top: str = "Kconfig") -> KconfigIndex:
    """Read the Kconfig tree starting at ``top`` (sources followed, x86 arch)."""
    index = KconfigIndex()
    _index_file(srctree, srctree / top, [], index, set())
    return index


def _strip_cond(text: str) -> tuple[str, str | None]:
    """Split 'X if COND' into (X, COND)."""
    m = re.match(r'^(.*?)\s+if\s+(.+)$', text)
    if m and m.group(1).count('"') % 2 == 0:
        return m.group(1).strip(), m.group(2).strip()
    return text.strip(), None


def _index_file(srctree: Path, path: Path, stack: list[tuple[str, str]], index: KconfigIndex,
                seen: set[Path]) -> None:
    if path in seen or not path.is_file():
        return
    seen.add(path)
    rel = os.path.relpath(path, srctree)
    lines = path.read_text(errors="replace").splitlines()
    current: Definition | None = None
    pending_block: tuple[str, str] | None = None  # a menu/choice whose 'depends on' lines follow
    block_stack: list[str] = []  # kinds pushed by this file, to pop on endif/endmenu/endchoice
    help_indent: int | None = None
    i = 0
    while i < len(lines):
        raw = lines[i]
        # Join continuation lines.
        while raw.endswith("\\") and i + 1 < len(lines):
            i += 1
            raw = raw[:-1] + " " + lines[i]
        lineno = i + 1
        i += 1
        expanded = raw.expandtabs(8)
        stripped = expanded.strip()
        if help_indent is not None:
            indent = len(expanded) - len(expanded.lstrip())
            if not stripped or indent > help_indent:
                continue
            help_indent = None
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        rest = rest.strip()
        loc = f"{rel}:{lineno}"
        if word in ("config", "menuconfig"):
            current = Definition(rest, loc, enclosing=list(stack))
            index.definitions.setdefault(rest, []).append(current)
            pending_block = None
        elif word in ("source", "osource", "rsource", "orsource"):
            target = _expand(rest.strip('"'))
            current = None
            if target is None:
                continue
            base = path.parent if word.startswith(("r", "or")) else srctree
            for match in sorted(glob.glob(str(base / target))):
                _index_file(srctree, Path(match), list(stack), index, seen)
        elif word == "if":
            stack.append(("if", f"{rest}@{loc}"))
            block_stack.append("if")
            current = None
        elif word in ("menu", "choice"):
            pending_block = (word, loc)
            stack.append((word, f"y@{loc}"))
            block_stack.append(word)
            current = None
        elif word in ("endif", "endmenu", "endchoice"):
            if block_stack:
                block_stack.pop()
                if stack:
                    stack.pop()
            current = None
            pending_block = None
        elif word in ("comment", "mainmenu"):
            current = None
            pending_block = None
        elif word in ("help", "---help---"):
            help_indent = len(expanded) - len(expanded.lstrip())
        elif word == "depends" and rest.startswith("on "):
            expr = rest[3:].strip()
            if current is not None:
                current.depends.append(expr)
            elif pending_block is not None and stack:
                kind, _ = stack[-1]
                prev = stack[-1][1].split("@", 1)[0]
                combined = expr if prev == "y" else f"({prev}) && ({expr})"
                stack[-1] = (kind, f"{combined}@{pending_block[1]}")
        elif current is not None:
            if word in ("bool", "tristate", "string", "int", "hex", "prompt"):
                prompt, _cond = _strip_cond(rest)
                if prompt.startswith('"'):
                    current.has_prompt = True
            elif word in ("def_bool", "def_tristate"):
                pass
            elif word == "select":
                target, cond = _strip_cond(rest)
                index.selected_by.setdefault(target, []).append((current.symbol, cond or "y"))
    del block_stack


def explain(option: str, wanted: str, values: dict[str, str], index: KconfigIndex, depth: int = 2) -> str:
    """Why ``option`` did not get ``wanted``: the blocking conditions, named with their locations."""
    sym = option.removeprefix("CONFIG_")
    defs = index.definitions.get(sym)
    if not defs:
        return f"{sym} is not defined in this tree's Kconfig (renamed or removed in this version?)"
    ev = ExprEvaluator(values)
    need = tristate(wanted) if wanted in ("y", "m") else 1
    reasons: list[str] = []
    for d in defs:
        for kind, cond_at in d.enclosing:
            cond, _, where = cond_at.partition("@")
            if cond != "y" and _safe_eval(ev, cond) < need:
                reasons.append(f"enclosing '{kind} {cond}' ({where}) is {_show(ev, cond)}"
                               + _deeper(cond, values, index, depth))
        for dep in d.depends:
            if _safe_eval(ev, dep) < need:
                reasons.append(f"'depends on {dep}' ({d.location}) is {_show(ev, dep)}"
                               + _deeper(dep, values, index, depth))
    if not any(d.has_prompt for d in defs) and wanted != "n":
        sels = index.selected_by.get(sym, [])
        by = ", ".join(f"{s}={values.get('CONFIG_' + s, 'n')}" for s, _ in sels[:6]) or "nothing"
        reasons.append(f"{sym} has no prompt: only 'select' sets it, from {by}"
                       + (_deeper(" || ".join(s for s, _ in sels[:3]), values, index, depth) if sels else ""))
    if wanted == "n":
        sels = [(s, c) for s, c in index.selected_by.get(sym, []) if tristate(values.get("CONFIG_" + s)) > 0]
        if sels:
            reasons.append("selected by " + ", ".join(f"{s}={values.get('CONFIG_' + s)}" for s, _ in sels[:6]))
    if not reasons:
        return f"{sym}: its dependencies look satisfied; check 'make menuconfig' (search {sym}) for a choice or range"
    return "; ".join(dict.fromkeys(reasons))


def _safe_eval(ev: ExprEvaluator, expr: str) -> int:
    try:
        return ev.evaluate(expr)
    except (ValueError, IndexError):
        return 2  # unparseable: do not blame it


def _show(ev: ExprEvaluator, expr: str) -> str:
    parts = [f"{s}={ev.symbol_value(s)}" for s in dict.fromkeys(expr_symbols(expr))]
    value = "nmy"[_safe_eval(ev, expr)]  # "m" when a tristate dependency caps a wanted y
    return f"{value} (" + ", ".join(parts) + ")" if parts else value


def _deeper(expr: str, values: dict[str, str], index: KconfigIndex, depth: int) -> str:
    """Explain, one level down, the symbols in ``expr`` that are off but have a prompt-less blocker."""
    if depth <= 0:
        return ""
    notes = []
    for s in dict.fromkeys(expr_symbols(expr)):
        if tristate(values.get(f"CONFIG_{s}")) == 0 and s in index.definitions:
            inner = explain(f"CONFIG_{s}", "y", values, index, depth - 1)
            if "look satisfied" not in inner:
                notes.append(f"{s}: {inner}")
    return f" [{'; '.join(notes)}]" if notes else ""
