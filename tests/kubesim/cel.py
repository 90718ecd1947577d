"""A subset of CEL for CRD validation rules (x-kubernetes-validations).

Covers what schema rules usually say: `self` and field access, `has()`,
literals (int, double, string, bool, null, lists, maps), ! - * / % + - < <= >
>= == != in && || ?:, size(), startsWith/endsWith/contains/matches, int(),
string(), double(), type() and the type names (int, double, string, list,
...), and the all/exists/exists_one/map/filter macros.
Transition rules (oldSelf) and anything else do not parse: compile() returns
None and the rule is not enforced, rather than guessed at.
"""

import re

_TOK = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[uU]?)|
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|
    (?P<id>[A-Za-z_][A-Za-z0-9_]*)|
    (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]{}])
)""", re.X)


class CelError(Exception):
    """A runtime error of a rule (no such key, bad types)."""


class _Missing(Exception):
    pass


_ESC = {"\\": "\\", "'": "'", '"': '"', "?": "?", "`": "`", "a": "\a", "b": "\b", "f": "\f",
        "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape(body):
    """A CEL string literal's value: its escapes (\\n, \\xHH, \\uHHHH, \\ooo, ...); others are errors."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e in _ESC:
            out.append(_ESC[e])
            i += 2
        elif e in ("x", "X", "u", "U"):
            n = {"x": 2, "X": 2, "u": 4, "U": 8}[e]
            h = body[i + 2:i + 2 + n]
            if len(h) != n or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise ValueError("invalid escape")
            out.append(chr(int(h, 16)))
            i += 2 + n
        elif e in "0123":
            o = body[i + 1:i + 4]
            if len(o) != 3 or not all(ch in "01234567" for ch in o):
                raise ValueError("invalid escape")
            out.append(chr(int(o, 8)))
            i += 4
        else:
            raise ValueError("invalid escape sequence")
    return "".join(out)


def re2_search(pattern, s):
    """Whether RE2 finds pattern in s (CEL's matches(), a schema's pattern). Python's re agrees
    with RE2 on the syntax both have, except that RE2's $ (without the m flag) is the end of
    the text only and Python's also matches before a final newline: $ becomes \\Z."""
    out, i, cls = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\Z" if nxt == "z" and not cls else pattern[i:i + 2])
            i += 2
            continue
        if cls:
            cls = c != "]"
        elif c == "[":
            cls = True
            if pattern[i + 1:i + 2] == "]" or pattern[i + 1:i + 3] == "^]":
                k = 2 if pattern[i + 1] == "]" else 3
                out.append(pattern[i:i + k])
                i += k
                continue
        elif c == "$":
            c = "\\Z"
        out.append(c)
        i += 1
    try:
        return re.search("".join(out), s) is not None
    except re.error as e:
        raise CelError("invalid regex: %s" % e)


def _lex(src):
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _TOK.match(src, pos)
        if not m or m.end() == pos:
            raise ValueError("unexpected character at %d" % pos)
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "num":
            text = text.rstrip("uU")
            out.append(("lit", float(text) if "." in text else int(text)))
        elif kind == "str":
            out.append(("lit", _unescape(text[1:-1])))
        elif kind == "id" and text in ("true", "false"):
            out.append(("lit", text == "true"))
        elif kind == "id" and text == "null":
            out.append(("lit", None))
        elif kind == "id" and text == "in":
            out.append(("op", "in"))
        else:
            out.append((kind, text))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self):
        return self.t[self.i]

    def take(self, kind=None, text=None):
        k, v = self.t[self.i]
        if (kind and k != kind) or (text is not None and v != text):
            raise ValueError("expected %s %s, got %s %s" % (kind, text, k, v))
        self.i += 1
        return v

    def at(self, text):
        k, v = self.peek()
        return k == "op" and v == text

    def expr(self):
        c = self.binary(0)
        if self.at("?"):
            self.take("op", "?")
            a = self.expr()
            self.take("op", ":")
            b = self.expr()
            return ("cond", c, a, b)
        return c

    _LEVELS = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]

    def binary(self, level):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self._LEVELS[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = ("bin", op, left, right)
        return left

    def unary(self):
        if self.at("!"):
            self.take()
            return ("not", self.unary())
        if self.at("-"):
            self.take()
            return ("neg", self.unary())
        return self.member()

    def args(self):
        self.take("op", "(")
        out = []
        while not self.at(")"):
            out.append(self.expr())
            if self.at(","):
                self.take()
        self.take("op", ")")
        return out

    def member(self):
        node = self.primary()
        while True:
            if self.at("."):
                self.take()
                name = self.take("id")
                if self.at("("):
                    if name in ("all", "exists", "exists_one", "map", "filter"):
                        self.take("op", "(")
                        var = self.take("id")
                        self.take("op", ",")
                        body = self.expr()
                        self.take("op", ")")
                        node = ("macro", name, node, var, body)
                    else:
                        node = ("call", name, [node] + self.args())
                else:
                    node = ("field", node, name)
            elif self.at("["):
                self.take()
                idx = self.expr()
                self.take("op", "]")
                node = ("index", node, idx)
            else:
                return node

    def primary(self):
        k, v = self.peek()
        if k == "lit":
            self.take()
            return ("lit", v)
        if k == "id":
            self.take()
            if v == "has":
                self.take("op", "(")
                arg = self.member()
                self.take("op", ")")
                if arg[0] != "field":
                    raise ValueError("has() needs a field selection")
                return ("has", arg[1], arg[2])
            if self.at("("):
                return ("call", v, self.args())
            if v == "oldSelf":
                raise ValueError("transition rules are not supported")
            return ("var", v)
        if self.at("("):
            self.take()
            e = self.expr()
            self.take("op", ")")
            return e
        if self.at("["):
            self.take()
            items = []
            while not self.at("]"):
                items.append(self.expr())
                if self.at(","):
                    self.take()
            self.take("op", "]")
            return ("list", items)
        if self.at("{"):
            self.take()
            pairs = []
            while not self.at("}"):
                key = self.expr()
                self.take("op", ":")
                pairs.append((key, self.expr()))
                if self.at(","):
                    self.take()
            self.take("op", "}")
            return ("map", pairs)
        raise ValueError("unexpected token %r" % (v,))


_CACHE = {}


def compile_rule(src):
    """The parsed rule, or None when it is outside the supported subset."""
    if src in _CACHE:
        return _CACHE[src]
    try:
        p = _Parser(_lex(src))
        ast = p.expr()
        p.take("end")
    except (ValueError, IndexError):
        ast = None
    _CACHE[src] = ast
    return ast


_TYPES = ("int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type")


class _Type(str):
    """A CEL type value: what type(x) returns and the names int, double, ... denote."""


def _type_of(v):
    if v is None:
        return _Type("null_type")
    if isinstance(v, bool):
        return _Type("bool")
    if isinstance(v, int):
        return _Type("int")
    if isinstance(v, float):
        return _Type("double")
    if isinstance(v, str):
        return _Type("string")
    if isinstance(v, list):
        return _Type("list")
    if isinstance(v, dict):
        return _Type("map")
    if isinstance(v, _Type):
        return _Type("type")
    raise CelError("no type for %r" % (v,))


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eval(n, env):
    kind = n[0]
    if kind == "lit":
        return n[1]
    if kind == "var":
        if n[1] not in env:
            if n[1] in _TYPES:
                return _Type(n[1])
            raise CelError("undeclared reference to '%s'" % n[1])
        return env[n[1]]
    if kind == "field":
        obj = _eval(n[1], env)
        if not isinstance(obj, dict) or n[2] not in obj:
            raise CelError("no such key: %s" % n[2])
        return obj[n[2]]
    if kind == "has":
        obj = _eval(n[1], env)
        return isinstance(obj, dict) and n[2] in obj
    if kind == "index":
        obj, idx = _eval(n[1], env), _eval(n[2], env)
        try:
            return obj[idx]
        except (KeyError, IndexError, TypeError):
            raise CelError("no such key: %s" % (idx,))
    if kind == "not":
        v = _eval(n[1], env)
        if not isinstance(v, bool):
            raise CelError("no such overload: !%s" % type(v).__name__)
        return not v
    if kind == "neg":
        v = _eval(n[1], env)
        if not _num(v):
            raise CelError("no such overload: -%s" % type(v).__name__)
        return -v
    if kind == "cond":
        return _eval(n[2], env) if _eval(n[1], env) else _eval(n[3], env)
    if kind == "list":
        return [_eval(x, env) for x in n[1]]
    if kind == "map":
        return {_eval(k, env): _eval(v, env) for k, v in n[1]}
    if kind == "bin":
        return _binary(n[1], n[2], n[3], env)
    if kind == "call":
        return _call(n[1], [_eval(a, env) for a in n[2]])
    if kind == "macro":
        _, name, target, var, body = n
        coll = _eval(target, env)
        items = list(coll.keys()) if isinstance(coll, dict) else coll
        if not isinstance(items, list):
            raise CelError("no such overload: %s on %s" % (name, type(coll).__name__))
        results = [_eval(body, dict(env, **{var: it})) for it in items]
        if name == "all":
            return all(results)
        if name == "exists":
            return any(results)
        if name == "exists_one":
            return sum(1 for r in results if r) == 1
        if name == "map":
            return results
        return [it for it, r in zip(items, results) if r]
    raise CelError("unknown node %s" % kind)


def _binary(op, a_node, b_node, env):
    if op == "&&":
        return bool(_eval(a_node, env)) and bool(_eval(b_node, env))
    if op == "||":
        return bool(_eval(a_node, env)) or bool(_eval(b_node, env))
    a, b = _eval(a_node, env), _eval(b_node, env)
    if op == "==":
        return a == b and type(a) is type(b) or (_num(a) and _num(b) and a == b)
    if op == "!=":
        return not (a == b and type(a) is type(b) or (_num(a) and _num(b) and a == b))
    if op == "in":
        if isinstance(b, (list, dict)):
            return a in b
        raise CelError("no such overload: in %s" % type(b).__name__)
    try:
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if isinstance(a, int) and isinstance(b, int):
                if b == 0:
                    raise CelError("division by zero")
                return int(a / b)
            return a / b
        if op == "%":
            if b == 0:
                raise CelError("modulus by zero")
            return a - b * int(a / b)
    except TypeError:
        raise CelError("no such overload: %s %s %s" % (type(a).__name__, op, type(b).__name__))
    raise CelError("unknown operator %s" % op)


def _call(name, args):
    if name == "type" and len(args) == 1:
        return _type_of(args[0])
    if name == "size" and len(args) == 1:
        if isinstance(args[0], (str, list, dict, bytes)):
            return len(args[0])
    elif name in ("startsWith", "endsWith", "contains", "matches") and len(args) == 2 \
            and isinstance(args[0], str) and isinstance(args[1], str):
        s, x = args
        if name == "startsWith":
            return s.startswith(x)
        if name == "endsWith":
            return s.endswith(x)
        if name == "contains":
            return x in s
        return re2_search(x, s)
    elif name == "int" and len(args) == 1 and not isinstance(args[0], bool):
        try:
            v = args[0]
            if isinstance(v, float) and (v != v or abs(v) >= 2 ** 63):
                raise CelError("double out of int range")
            return int(v)   # truncates toward zero, as CEL's int(double)
        except (TypeError, ValueError):
            pass
    elif name == "double" and len(args) == 1 and not isinstance(args[0], bool):
        try:
            return float(args[0])
        except (TypeError, ValueError):
            pass
    elif name == "string" and len(args) == 1:
        v = args[0]
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    raise CelError("found no matching overload for '%s'" % name)


def evaluate(ast, value):
    """True, False, or raises CelError."""
    return _eval(ast, {"self": value})


def evaluate_env(ast, env):
    """The value of ast with the variables of env (object, oldObject, ...)."""
    return _eval(ast, dict(env))
