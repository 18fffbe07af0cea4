"""A small Go text/template engine with the Sprig functions Helm adds, for
exactly the subset the Meridian chart uses (Helm itself cannot be installed
on our build machines).

What it supports: text with `{{ }}` actions and `{{-`/`-}}` whitespace
trimming; comments `{{/* */}}`; `if`/`else if`/`else`, `range` (lists and
maps, with `$i, $v :=`), `with`, `define` and `end`; pipelines with `|`,
parentheses, variables (`$x :=`, `$`), fields (`.Values.a.b`, `$x.a`);
string, number and boolean literals; the functions in `FUNCTIONS`.

Where Go and Helm would refuse a template, this engine refuses it too, so a
template that renders here also renders under Helm: a field of a missing
value is an error ("nil pointer evaluating"), comparing an int with a float
or a string is an error, `printf "%d"` of a float is an error, and values
from YAML files are floats (Helm reads every number in values as float64;
`{{ 1000000 }}` from values prints `1e+06`, so templates use `int64`).
Anything outside the subset (`template`, `block`, assignment with `=`,
unknown functions) is an error, never silently ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml


class TemplateError(Exception):
    """A template that does not parse or cannot be evaluated."""


class FailError(TemplateError):
    """`fail` or `required` stopped the rendering (Helm's user-facing error)."""


# ---------------------------------------------------------------- lexing

_ACTION = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.S)


def _split(src: str) -> list[tuple[str, Any]]:
    """Splits into ("text", str) and ("action", str) items, trims applied."""
    items: list[list[Any]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        items.append(["text", src[pos : m.start()]])
        body = m.group(2)
        if m.group(1):
            items[-1][1] = items[-1][1].rstrip(" \t\r\n")
        items.append(["action", body.strip(), bool(m.group(3))])
        pos = m.end()
    items.append(["text", src[pos:]])
    out: list[tuple[str, Any]] = []
    trim_next = False
    for it in items:
        if it[0] == "text":
            text = it[1].lstrip(" \t\r\n") if trim_next else it[1]
            trim_next = False
            if text:
                out.append(("text", text))
        else:
            trim_next = it[2]
            body = it[1]
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError(f"unclosed comment: {{{{{body}}}}}")
                continue
            out.append(("action", body))
    return out


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def _tokens(src: str) -> list[tuple[str, str]]:
    toks = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse {src!r} at {src[pos:]!r}")
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


# ---------------------------------------------------------------- syntax


@dataclass
class Operand:
    kind: str  # lit, field, var, ident, pipe
    value: Any


@dataclass
class Pipeline:
    decl: list[str]
    cmds: list[list[Operand]]


@dataclass
class Node:
    kind: str  # text, action, if, range, with
    text: str = ""
    pipe: Pipeline | None = None
    branches: list[tuple[Pipeline, list["Node"]]] = field(default_factory=list)
    body: list["Node"] = field(default_factory=list)
    else_body: list["Node"] = field(default_factory=list)


class _PipeParser:
    def __init__(self, toks: list[tuple[str, str]]):
        self.toks = toks
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise TemplateError("unexpected end of action")
        self.i += 1
        return t

    def pipeline(self, allow_decl: bool = True) -> Pipeline:
        decl: list[str] = []
        if allow_decl:
            j = self.i
            names = []
            while j < len(self.toks) and self.toks[j][0] == "var":
                names.append(self.toks[j][1])
                j += 1
                if j < len(self.toks) and self.toks[j][0] == "comma":
                    j += 1
                    continue
                break
            if names and j < len(self.toks) and self.toks[j][0] == "decl":
                decl = names
                self.i = j + 1
            elif names and j < len(self.toks) and self.toks[j][0] == "assign":
                raise TemplateError("assignment with = is outside the supported subset")
        cmds = [self.command()]
        while self.peek() and self.peek()[0] == "pipe":
            self.take()
            cmds.append(self.command())
        return Pipeline(decl, cmds)

    def command(self) -> list[Operand]:
        ops: list[Operand] = []
        while True:
            t = self.peek()
            if t is None or t[0] in ("pipe", "rp"):
                break
            ops.append(self.operand())
        if not ops:
            raise TemplateError("empty command")
        return ops

    def operand(self) -> Operand:
        kind, text = self.take()
        if kind == "str":
            return Operand("lit", json.loads(text))
        if kind == "raw":
            return Operand("lit", text[1:-1])
        if kind == "num":
            return Operand("lit", float(text) if re.search(r"[.eE]", text) else int(text))
        if kind == "field":
            return Operand("field", [p for p in text.split(".") if p])
        if kind == "var":
            name, *path = text.split(".")
            return Operand("var", (name, path))
        if kind == "ident":
            if text in ("true", "false"):
                return Operand("lit", text == "true")
            if text == "nil":
                return Operand("lit", None)
            return Operand("ident", text)
        if kind == "lp":
            inner = self.pipeline(allow_decl=False)
            if self.take()[0] != "rp":
                raise TemplateError("missing )")
            return Operand("pipe", inner)
        raise TemplateError(f"unexpected {text!r}")


def _parse_pipe(src: str) -> Pipeline:
    p = _PipeParser(_tokens(src))
    pipe = p.pipeline()
    if p.peek() is not None:
        raise TemplateError(f"unexpected {p.peek()[1]!r} in {src!r}")
    return pipe


_KEYWORD = re.compile(r"^(if|else if|else|end|range|with|define|template|block)\b\s*(.*)$", re.S)


def parse(src: str, name: str = "template") -> tuple[list[Node], dict[str, list[Node]]]:
    """Parses a template: its nodes and the `define`d templates in it."""
    items = _split(src)
    defines: dict[str, list[Node]] = {}
    pos = 0

    def block(top: bool) -> tuple[list[Node], str, str]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(items):
            kind, body = items[pos]
            pos += 1
            if kind == "text":
                nodes.append(Node("text", text=body))
                continue
            m = _KEYWORD.match(body)
            if not m:
                nodes.append(Node("action", pipe=_parse_pipe(body)))
                continue
            kw, rest = m.group(1), m.group(2)
            if kw in ("end", "else", "else if"):
                if top:
                    raise TemplateError(f"{name}: unexpected {{{{{body}}}}}")
                return nodes, kw, rest
            if kw in ("template", "block"):
                raise TemplateError(f"{name}: {kw} is outside the supported subset (use include)")
            if kw == "define":
                if not top:
                    raise TemplateError(f"{name}: define inside a block")
                dname = json.loads(rest)
                inner, end, _ = block(False)
                if end != "end":
                    raise TemplateError(f"{name}: define {dname} ends with {end}")
                defines[dname] = inner
                continue
            if kw == "if":
                node = Node("if")
                cond = rest
                while True:
                    inner, end, erest = block(False)
                    node.branches.append((_parse_pipe(cond), inner))
                    if end == "else if":
                        cond = erest
                        continue
                    if end == "else":
                        node.else_body, end2, _ = block(False)
                        if end2 != "end":
                            raise TemplateError(f"{name}: else must be followed by end")
                    break
                nodes.append(node)
                continue
            node = Node(kw, pipe=_parse_pipe(rest))
            node.body, end, _ = block(False)
            if end == "else":
                node.else_body, end2, _ = block(False)
                if end2 != "end":
                    raise TemplateError(f"{name}: else must be followed by end")
            elif end != "end":
                raise TemplateError(f"{name}: {kw} cannot have {end}")
            nodes.append(node)
        if not top:
            raise TemplateError(f"{name}: missing {{{{ end }}}}")
        return nodes, "", ""

    nodes, _, _ = block(True)
    return nodes, defines


# ---------------------------------------------------------------- values


def go_format(v: Any) -> str:
    """Go's fmt `%v` for the values a template prints."""
    if v is None:
        return ""  # Helm replaces "<no value>" with nothing
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "[" + " ".join(go_format(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_format(v[k])}" for k in sorted(v)) + "]"
    raise TemplateError(f"cannot print {type(v).__name__}")


def _go_float(f: float) -> str:
    """fmt's `%v` of a float64, i.e. strconv's 'g' with the shortest
    digits: the exponent form when the decimal exponent is below -4 or at
    least 6 (so a million prints as 1e+06, as Helm users learn)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    r = repr(f)  # shortest round-trip digits
    mant, _, exp_s = r.partition("e")
    exp10 = int(exp_s) if exp_s else 0
    sign = "-" if mant.startswith("-") else ""
    mant = mant.lstrip("-")
    int_part, _, frac = mant.partition(".")
    digits = (int_part + frac).lstrip("0")
    # decimal exponent of the first digit
    if int_part.strip("0"):
        point = len(int_part.lstrip("0")) + exp10
    else:
        point = -(len(frac) - len(frac.lstrip("0"))) + exp10
    digits = digits.rstrip("0") or "0"
    x = point - 1  # the exponent in d.ddd e x
    if x < -4 or x >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, empty string/list/map are false."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    return type(v).__name__


def _comparable(a: Any, b: Any, op: str) -> None:
    if _kind(a) != _kind(b):
        raise TemplateError(
            f"{op}: incompatible types for comparison ({_kind(a)} and {_kind(b)}); "
            "convert with int64 or toString"
        )


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        try:
            return int(float(v))
        except ValueError:
            return 0
    return 0


def _yaml_ready(v: Any) -> Any:
    """Values as Go's yaml marshalling prints them: 3.0 is 3."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: _yaml_ready(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_yaml_ready(x) for x in v]
    return v


def to_yaml(v: Any) -> str:
    if v is None:
        return "null"
    out = yaml.safe_dump(_yaml_ready(v), default_flow_style=False, sort_keys=True, width=1 << 16)
    if out.endswith("\n...\n"):
        out = out[: -len("...\n")]
    return out.rstrip("\n")


def _printf(fmt: str, *args: Any) -> str:
    out = []
    it = iter(args)
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1 : i + 2]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        try:
            a = next(it)
        except StopIteration:
            raise TemplateError(f"printf {fmt!r}: missing argument") from None
        if verb in ("s", "v"):
            out.append(go_format(a))
        elif verb == "d":
            if _kind(a) != "int":
                raise TemplateError(f"printf %d of a {_kind(a)}: convert with int64 first")
            out.append(str(a))
        elif verb == "q":
            out.append(json.dumps(go_format(a), ensure_ascii=False))
        else:
            raise TemplateError(f"printf verb %{verb} is outside the supported subset")
    return "".join(out)


def _required(msg: str, v: Any) -> Any:
    if v is None or (isinstance(v, str) and v == ""):
        raise FailError(msg)
    return v


def _fail(msg: str) -> Any:
    raise FailError(msg)


def _indent(n: int, s: str) -> str:
    pad = " " * _to_int(n)
    return "\n".join(pad + line for line in go_format(s).split("\n"))


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _eq(a: Any, *bs: Any) -> bool:
    for b in bs:
        _comparable(a, b, "eq")
        if a == b:
            return True
    return False


def _ordered(op: str, f: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def cmp(a: Any, b: Any) -> bool:
        _comparable(a, b, op)
        if _kind(a) not in ("int", "float", "string"):
            raise TemplateError(f"{op}: cannot order {_kind(a)}")
        return f(a, b)

    return cmp


def _len(v: Any) -> int:
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise TemplateError(f"len of {_kind(v)}")


def _has_key(d: Any, k: str) -> bool:
    if not isinstance(d, dict):
        raise TemplateError("hasKey needs a map")
    return k in d


def _quote(*args: Any) -> str:
    return " ".join(json.dumps(go_format(a), ensure_ascii=False) for a in args if a is not None)


def _dict(*kv: Any) -> dict:
    if len(kv) % 2:
        raise TemplateError("dict needs key/value pairs")
    return {go_format(kv[i]): kv[i + 1] for i in range(0, len(kv), 2)}


def _regex_match(pattern: str, s: Any) -> bool:
    return re.search(pattern, go_format(s)) is not None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "toYaml": to_yaml,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "quote": _quote,
    "required": _required,
    "fail": _fail,
    "default": lambda d, *v: v[0] if v and truth(v[0]) else d,
    "empty": lambda v: not truth(v),
    "not": lambda v: not truth(v),
    "and": _and,
    "or": _or,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "len": _len,
    "printf": _printf,
    "int": _to_int,
    "int64": _to_int,
    "add": lambda *a: sum(_to_int(x) for x in a),
    "sub": lambda a, b: _to_int(a) - _to_int(b),
    "mul": lambda *a: math.prod(_to_int(x) for x in a),
    "div": lambda a, b: int(_to_int(a) / _to_int(b)),
    "toString": go_format,
    "trunc": lambda n, s: go_format(s)[: _to_int(n)] if _to_int(n) >= 0 else go_format(s)[_to_int(n) :],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "trimPrefix": lambda pre, s: s[len(pre) :] if pre and s.startswith(pre) else s,
    "replace": lambda old, new, s: go_format(s).replace(old, new),
    "contains": lambda sub, s: sub in go_format(s),
    "hasPrefix": lambda pre, s: go_format(s).startswith(pre),
    "join": lambda sep, xs: sep.join(go_format(x) for x in (xs or [])),
    "list": lambda *xs: list(xs),
    "dict": _dict,
    "hasKey": _has_key,
    "regexMatch": _regex_match,
}


# ---------------------------------------------------------------- evaluation


class Engine:
    """Templates by name plus their shared `define`s."""

    def __init__(self) -> None:
        self.defines: dict[str, list[Node]] = {}
        self.templates: dict[str, list[Node]] = {}

    def add(self, name: str, src: str) -> None:
        nodes, defines = parse(src, name)
        for d in defines:
            if d in self.defines:
                raise TemplateError(f"{name}: {d} defined twice")
        self.defines.update(defines)
        self.templates[name] = nodes

    def render(self, name: str, dot: Any) -> str:
        return self._run(self.templates[name], dot, [{"$": dot}], name)

    def _run(self, nodes: list[Node], dot: Any, scopes: list[dict], where: str) -> str:
        out: list[str] = []
        scopes = scopes + [{}]
        for n in nodes:
            if n.kind == "text":
                out.append(n.text)
            elif n.kind == "action":
                v = self._pipe(n.pipe, dot, scopes, where)
                if not n.pipe.decl:
                    out.append(go_format(v))
            elif n.kind == "if":
                for cond, body in n.branches:
                    if truth(self._pipe(cond, dot, scopes + [{}], where)):
                        out.append(self._run(body, dot, scopes, where))
                        break
                else:
                    out.append(self._run(n.else_body, dot, scopes, where))
            elif n.kind == "with":
                inner = scopes + [{}]
                v = self._pipe(n.pipe, dot, inner, where)
                if truth(v):
                    out.append(self._run(n.body, v, inner, where))
                else:
                    out.append(self._run(n.else_body, dot, scopes, where))
            elif n.kind == "range":
                out.append(self._range(n, dot, scopes, where))
        return "".join(out)

    def _range(self, n: Node, dot: Any, scopes: list[dict], where: str) -> str:
        decl = n.pipe.decl
        bare = Pipeline([], n.pipe.cmds)
        coll = self._pipe(bare, dot, scopes, where)
        if coll is None:
            pairs: list[tuple[Any, Any]] = []
        elif isinstance(coll, dict):
            pairs = [(k, coll[k]) for k in sorted(coll)]
        elif isinstance(coll, list):
            pairs = list(enumerate(coll))
        elif isinstance(coll, int) and not isinstance(coll, bool):
            pairs = [(i, i) for i in range(coll)]
        else:
            raise TemplateError(f"{where}: range over {_kind(coll)}")
        if not pairs:
            return self._run(n.else_body, dot, scopes, where)
        out = []
        for k, v in pairs:
            scope: dict[str, Any] = {}
            if len(decl) == 1:
                scope[decl[0]] = v
            elif len(decl) == 2:
                scope[decl[0]], scope[decl[1]] = k, v
            out.append(self._run(n.body, v, scopes + [scope], where))
        return "".join(out)

    def _pipe(self, p: Pipeline, dot: Any, scopes: list[dict], where: str) -> Any:
        val: Any = None
        first = True
        for cmd in p.cmds:
            val = self._cmd(cmd, dot, scopes, where, None if first else (val,))
            first = False
        if p.decl:
            if len(p.decl) != 1:
                raise TemplateError(f"{where}: two variables only in range")
            scopes[-1][p.decl[0]] = val
        return val

    def _cmd(self, cmd: list[Operand], dot: Any, scopes: list[dict], where: str, piped: tuple | None) -> Any:
        head = cmd[0]
        if head.kind == "ident":
            args = [self._operand(o, dot, scopes, where) for o in cmd[1:]]
            if piped is not None:
                args.append(piped[0])
            return self._call(head.value, args, dot, where)
        if len(cmd) != 1 or piped is not None:
            raise TemplateError(f"{where}: can't give arguments to a non-function")
        return self._operand(head, dot, scopes, where)

    def _call(self, fn: str, args: list[Any], dot: Any, where: str) -> Any:
        if fn == "include":
            if len(args) != 2:
                raise TemplateError(f"{where}: include takes a name and a context")
            name, ctx = args
            if name not in self.defines:
                raise TemplateError(f"{where}: no template {name!r}")
            return self._run(self.defines[name], ctx, [{"$": ctx}], name)
        f = FUNCTIONS.get(fn)
        if f is None:
            raise TemplateError(f"{where}: function {fn!r} is outside the supported subset")
        try:
            return f(*args)
        except TypeError as e:
            raise TemplateError(f"{where}: {fn}: {e}") from None

    def _operand(self, o: Operand, dot: Any, scopes: list[dict], where: str) -> Any:
        if o.kind == "lit":
            return o.value
        if o.kind == "field":
            return _walk(dot, o.value, where)
        if o.kind == "var":
            name, path = o.value
            for s in reversed(scopes):
                if name in s:
                    return _walk(s[name], path, where)
            raise TemplateError(f"{where}: undefined variable {name}")
        if o.kind == "pipe":
            return self._pipe(o.value, dot, scopes, where)
        if o.kind == "ident":
            return self._call(o.value, [], dot, where)
        raise TemplateError(f"{where}: bad operand")


def _walk(v: Any, path: list[str], where: str) -> Any:
    for i, key in enumerate(path):
        if v is None:
            raise TemplateError(
                f"{where}: nil pointer evaluating interface {{}}.{key} (.{'.'.join(path[: i + 1])})"
            )
        if not isinstance(v, dict):
            raise TemplateError(f"{where}: can't evaluate field {key} in type {_kind(v)}")
        v = v.get(key)
    return v
