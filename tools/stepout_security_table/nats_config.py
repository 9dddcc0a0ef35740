"""A reader of nats-server's configuration format, enough to read the identities and their permissions.

The format is a superset of JSON: `key = value`, `key: value` or `key value`; unquoted keys and
values; `#` and `//` comments; items separated by newlines, commas or semicolons; maps `{}` and
arrays `[]` without the outer braces at the top; `include FILE`; and variables, `$NAME`, that stand
for a key set earlier in the same or an enclosing map, or else for an environment variable. Scalars
are kept as the text written (`1MB`, `true`, `4222`): nothing here needs their types. A variable
that nothing defines is kept as `$NAME`, so that a configuration reads without its secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

Value: TypeAlias = str | list["Value"] | dict[str, "Value"]

_BLANK = " \t\r"
_NAME = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f"}


class ConfigError(ValueError):
    """The text does not read as a nats-server configuration; the message names the file and line."""


def read(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Value]:
    """The configuration in `path`, with its includes and variables resolved."""
    return parse(path.read_text(encoding="utf-8"), origin=path, env=os.environ if env is None else env)


def parse(text: str, origin: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, Value]:
    """The configuration `text`; includes are read relative to `origin`'s folder."""
    return _Reader(text, origin, {} if env is None else env).top()


class _Reader:
    def __init__(self, text: str, origin: Path | None, env: Mapping[str, str]) -> None:
        self.text, self.origin, self.env, self.at = text, origin, env, 0

    # --- positions and errors -------------------------------------------------------------------

    def fail(self, what: str) -> ConfigError:
        line = self.text.count("\n", 0, self.at) + 1
        return ConfigError(f"{self.origin or '<text>'}:{line}: {what}")

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def skip(self, *, lines: bool, separators: str = "") -> None:
        """Past blanks and comments, and past newlines and `separators` too when `lines`."""
        while self.at < len(self.text):
            char = self.text[self.at]
            if char in _BLANK or (lines and (char == "\n" or char in separators)):
                self.at += 1
            elif char == "#" or self.text.startswith("//", self.at):
                end = self.text.find("\n", self.at)
                self.at = len(self.text) if end < 0 else end
            else:
                return

    # --- maps and arrays ------------------------------------------------------------------------

    def top(self) -> dict[str, Value]:
        return self.map_body(closing="", scopes=[])

    def map_body(self, closing: str, scopes: list[dict[str, Value]]) -> dict[str, Value]:
        result: dict[str, Value] = {}
        scopes = [*scopes, result]
        while True:
            self.skip(lines=True, separators=",;")
            if self.peek() == closing:
                self.at += 1 if closing else 0
                return result
            if not self.peek():
                raise self.fail(f"`{closing}` expected before the end")
            key = self.key()
            self.skip(lines=False)
            separated = self.peek() in "=:" and self.peek() != ""
            if separated:
                self.at += 1
                self.skip(lines=False)
            if key.lower() == "include" and not separated:
                result.update(self.include(self.scalar()))
                continue
            result[key] = self.value(scopes)

    def array(self, scopes: list[dict[str, Value]]) -> list[Value]:
        items: list[Value] = []
        while True:
            self.skip(lines=True, separators=",")
            if self.peek() == "]":
                self.at += 1
                return items
            if not self.peek():
                raise self.fail("`]` expected before the end")
            items.append(self.value(scopes))

    def include(self, name: str) -> dict[str, Value]:
        if self.origin is None:
            raise self.fail(f"include {name}: no file to read it relative to")
        path = self.origin.parent / name
        return _Reader(path.read_text(encoding="utf-8"), path, self.env).top()

    # --- keys and values ------------------------------------------------------------------------

    def key(self) -> str:
        if self.peek() in ('"', "'"):
            return self.quoted()
        start = self.at
        while self.peek() and self.peek() not in _BLANK + "\n=:{[":
            self.at += 1
        if self.at == start:
            raise self.fail(f"a key expected, not {self.peek()!r}")
        return self.text[start : self.at]

    def value(self, scopes: list[dict[str, Value]]) -> Value:
        char = self.peek()
        if char == "{":
            self.at += 1
            return self.map_body("}", scopes)
        if char == "[":
            self.at += 1
            return self.array(scopes)
        if char in ('"', "'"):
            return self.quoted()
        if char == "$":
            return self.variable(scopes)
        if not char or char in "\n,;]}":
            raise self.fail("a value expected")
        return self.scalar()

    def variable(self, scopes: list[dict[str, Value]]) -> Value:
        self.at += 1
        start = self.at
        while self.peek() in _NAME and self.peek():
            self.at += 1
        name = self.text[start : self.at]
        if not name:
            raise self.fail("a variable name expected after `$`")
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        return self.env.get(name, f"${name}")

    def scalar(self) -> str:
        """An unquoted value: up to a blank, a separator, a closing bracket or a comment."""
        if self.peek() in ('"', "'"):
            return self.quoted()
        start = self.at
        while self.peek() and self.peek() not in _BLANK + "\n,;]}#":
            self.at += 1
        return self.text[start : self.at]

    def quoted(self) -> str:
        quote = self.peek()
        self.at += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if not char or char == "\n":
                raise self.fail(f"unterminated {quote}string{quote}")
            self.at += 1
            if char == quote:
                return "".join(out)
            if char == "\\" and quote == '"':
                out.append(self.escape())
            else:
                out.append(char)

    def escape(self) -> str:
        char = self.peek()
        self.at += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char == "u":
            digits = self.text[self.at : self.at + 4]
            self.at += 4
            return chr(int(digits, 16))
        raise self.fail(f"unknown escape \\{char}")
