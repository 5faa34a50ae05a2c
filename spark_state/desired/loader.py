"""Load a state file: YAML (round-trip, so every node keeps its line) → validated DesiredState, or every problem at once.

Each problem is reported as `FILE:LINE:COL field.path: message` (1-based line and column).
"""

from __future__ import annotations

import difflib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import Problem, StateFileError
from . import checks
from .model import (
    STACKS,
    Bench,
    Checkpoint,
    DesiredState,
    Engine,
    Expect,
    Fleet,
    Group,
    Host,
    Image,
    ImageEntry,
    Monitoring,
    Paths,
    Rollout,
    Service,
)

FieldPath = tuple[str | int, ...]

_SECTION_ENTRY: dict[str, Any] = {
    "images": ImageEntry,
    "checkpoints": Checkpoint,
    "engines": Engine,
    "services": Service,
    "groups": Group,
    "hosts": Host,
}
_SECTION_SINGLE: dict[str, Any] = {"fleet": Fleet, "paths": Paths, "bench": Bench, "rollout": Rollout}
_SERVICE_TAGS = set(STACKS)
_SERVICE_MODELS: dict[str, type[BaseModel]] = {name: stack.service for name, stack in STACKS.items()}


@dataclass(frozen=True)
class LoadedState:
    """A validated state plus what the loader learned on the way (file, warnings)."""

    state: DesiredState
    file: str
    warnings: tuple[Problem, ...]


MAX_STATE_BYTES = 256 * 1024  # 50× a two-Spark state; refused before parsing (ruamel reads ~150 KB/s here)
MAX_READ_SECONDS = 1.5  # reading the YAML stops here, wherever it is: no file holds a command for longer
MAX_VALUES = 100_000  # values once aliases and merges are expanded: an alias bomb stops here, in bounded time
MAX_DEPTH = 32  # nesting of mappings and lists; a state file needs 6
# A line is at most this long: ruamel reads a long comment line in time that grows with its square (900 KB:
# 12 s); the longest value the schema takes (a 100,000-character prompt) fits, or folds over lines (`prompt: >-`).
MAX_LINE_CHARS = 64 * 1024
# Characters that make a file read differently than it runs (Trojan Source) or that YAML does not allow.
_INVISIBLE = {
    0x200B: "ZERO WIDTH SPACE",
    0x200C: "ZERO WIDTH NON-JOINER",
    0x200D: "ZERO WIDTH JOINER",
    0x2060: "WORD JOINER",
    0xFEFF: "ZERO WIDTH NO-BREAK SPACE",
    0x202A: "LEFT-TO-RIGHT EMBEDDING",
    0x202B: "RIGHT-TO-LEFT EMBEDDING",
    0x202C: "POP DIRECTIONAL FORMATTING",
    0x202D: "LEFT-TO-RIGHT OVERRIDE",
    0x202E: "RIGHT-TO-LEFT OVERRIDE",
    0x2066: "LEFT-TO-RIGHT ISOLATE",
    0x2067: "RIGHT-TO-LEFT ISOLATE",
    0x2068: "FIRST STRONG ISOLATE",
    0x2069: "POP DIRECTIONAL ISOLATE",
}


# What a YAML syntax error most likely means in a state file, by the words ruamel uses for it.
YAML_HINTS = (
    (
        "mapping values are not allowed here",
        "a value holding ': ' needs quotes, or this line is indented deeper than the key above it",
    ),
    ("found character '\\t' that cannot start any token", "YAML indents with spaces only: replace the tab"),
    ("could not find expected ':'", "a key needs ': ' after it, or this line should be indented under the one above"),
    ("expected <block end>", "this line is indented differently from the entries beside it"),
    ("expected ',' or '}'", "entries of a {...} mapping are separated by ', '; a value holding ':' needs quotes"),
    ("expected ',' or ']'", "items of a [...] list are separated by ', '; an item holding ':' needs quotes"),
    ("while scanning a quoted scalar", "a quote is opened and never closed"),
    ("found unexpected end of stream", "something opened ({, [ or a quote) is never closed"),
    ("found duplicate key", "each key once per mapping: merge the two entries"),
)


def load_state(path: str | Path) -> LoadedState:
    """Read and validate a state file. Raises StateFileError listing every problem found."""
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_STATE_BYTES:
            raise StateFileError(
                [
                    Problem(
                        file, 1, 1, "<file>", f"{size} bytes: a state file is at most {MAX_STATE_BYTES} bytes (256 KiB)"
                    )
                ]
            )
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StateFileError([Problem(file, 1, 1, "<file>", f"cannot read: {exc}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data[: exc.start].decode("utf-8", "replace"))
        raise StateFileError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "<file>",
                    f"not UTF-8: byte 0x{data[exc.start]:02x} ({exc.reason}); save the file as UTF-8",
                )
            ]
        ) from exc
    return _load_once(text, file)


@functools.lru_cache(maxsize=8)
def _load_once(text: str, file: str) -> LoadedState:
    """A deploy loads the state on every host (pyinfra runs the deploy file once per host): the same text, read
    and validated once per process. Only a state that loads is kept; what is kept cannot change (frozen)."""
    return load_state_text(text, file)


def _line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character after `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _text_problems(text: str, file: str) -> list[Problem]:
    """What is wrong with the text before YAML reads it: control characters (NUL included), invisible and
    direction-changing characters, and a %YAML directive for another version than 1.2."""
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            problems.append(
                Problem(
                    file,
                    number,
                    MAX_LINE_CHARS + 1,
                    "<file>",
                    f"a line of {len(line)} characters: at most {MAX_LINE_CHARS}; fold a long value over several "
                    "lines (`key: >-` and the text indented below)",
                )
            )
            continue
        if line.startswith("%TAG"):
            problems.append(
                Problem(file, number, 1, "<yaml>", "%TAG directives are not read by spark-state: remove it")
            )
        if line.startswith("%YAML") and line.split()[1:2] != ["1.2"]:
            problems.append(
                Problem(
                    file,
                    number,
                    1,
                    "<yaml>",
                    f"{line.strip()!r}: spark-state reads YAML 1.2 "
                    "only (YAML 1.1 turns on/yes/no into booleans and 2:13:23 into a number); "
                    "remove the directive",
                )
            )
        for column, char in enumerate(line, start=1):
            code = ord(char)
            if code == 0xFEFF and number == 1 and column == 1:
                continue  # a byte order mark opens the file: allowed
            if code in _INVISIBLE or (code < 0x20 and char not in "\t\r") or 0x7F <= code <= 0x9F:
                name = _INVISIBLE.get(code) or ("NUL" if code == 0 else "a control character")
                problems.append(
                    Problem(
                        file,
                        number,
                        column,
                        "<file>",
                        f"character U+{code:04X} ({name}) is not allowed: it hides what the file says",
                    )
                )
                break  # one per line is enough to find them
    return problems


def load_state_text(text: str, file: str = "<string>") -> LoadedState:
    if len(text) > MAX_STATE_BYTES:
        raise StateFileError([Problem(file, 1, 1, "<file>", f"a state file is at most {MAX_STATE_BYTES} bytes")])
    if problems := _text_problems(text, file):
        raise StateFileError(problems)
    yaml = YAML(typ="rt")
    yaml.Composer = _TimedComposer
    _TimedComposer.deadline = time.monotonic() + MAX_READ_SECONDS
    try:
        root = yaml.load(text)
    except _TooSlow as exc:
        raise StateFileError(
            [
                Problem(
                    file, exc.line, 1, "<yaml>", f"reading stopped here after {MAX_READ_SECONDS} s: too large to read"
                )
            ]
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = exc.context or ""
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            context += f" started at {exc.context_mark.line + 1}:{exc.context_mark.column + 1}"
        message = ": ".join(str(part) for part in (context, exc.problem) if part) or str(exc)
        hint = next((hint for said, hint in YAML_HINTS if said in message), None)
        message += f" (hint: {hint})" if hint else ""
        raise StateFileError([Problem(file, line, col, "<yaml>", message)]) from exc
    except YAMLError as exc:
        raise StateFileError([Problem(file, 1, 1, "<yaml>", str(exc))]) from exc
    except RecursionError:
        line, col = _deepest(text)
        raise StateFileError(
            [Problem(file, line, col, "<yaml>", f"nested deeper than {MAX_DEPTH} levels (a state file needs 6)")]
        ) from None
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        raise StateFileError([Problem(file, 1, 1, "<root>", "the state file must be a mapping of sections")])

    reader = _Plain(file, text)
    try:
        data = reader.plain(root, (1, 1))
    except _TooManyValues as exc:
        line, col = exc.where
        why = (
            "once aliases and merges are expanded (an alias bomb?); write the values out"
            if "*" in text or "<<" in text
            else "(a state file is at most that large)"
        )
        raise StateFileError([Problem(file, line, col, "<yaml>", f"more than {MAX_VALUES} values {why}")]) from None
    if reader.problems:
        raise StateFileError(reader.problems)
    problems = []
    try:
        state = DesiredState.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, root, file))
        state = _partial_state(data)
    findings = checks.check(state, _declared(data))
    problems.extend(_locate(root, file, f.path, f.message, f.at_key) for f in findings if not f.warning)
    if problems:
        raise StateFileError(problems)
    warnings = tuple(_locate(root, file, f.path, f.message, f.at_key) for f in findings if f.warning)
    return LoadedState(state=state, file=file, warnings=warnings)


class _TooSlow(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _TimedComposer(Composer):
    """ruamel's composer, stopped once the file has taken MAX_READ_SECONDS (checked at every node)."""

    deadline = 0.0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if time.monotonic() > self.deadline:
            raise _TooSlow(self.parser.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


class _TooManyValues(Exception):
    def __init__(self, where: tuple[int, int]) -> None:
        self.where = where


class _Plain:
    """ruamel's round-trip types → plain dict/list/str/int/float/bool for pydantic, expanding at most MAX_VALUES
    values (aliases are shared nodes: expanding them is where a bomb would explode), and refusing at each value's
    line what YAML reads but spark-state does not: tags, numbers written with underscores, nesting deeper than
    MAX_DEPTH, and — in the decoded text, escapes included — control, invisible and direction characters and
    lone surrogates."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.lines = file, text.split("\n")
        self.budget = MAX_VALUES
        self.expanding = (1, 1)  # the collection entered last
        self.problems: list[Problem] = []

    def refuse(self, where: tuple[int, int], path: FieldPath, message: str) -> None:
        self.problems.append(Problem(self.file, where[0], where[1], _dotted(path) or "<root>", message))

    def plain(self, node: Any, where: tuple[int, int], path: FieldPath = ()) -> Any:
        self.budget -= 1
        lc = getattr(node, "lc", None)
        if lc is not None and lc.line is not None:
            where = self.expanding = (lc.line + 1, lc.col + 1)
        if self.budget < 0:
            raise _TooManyValues(self.expanding)  # the collection being expanded: where the bomb goes off
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None or isinstance(node, TaggedScalar):
            self.refuse(where, path, f"YAML tag {tag or '?'}: spark-state reads no tags; write the value plainly")
            return None
        if isinstance(node, dict | list) and len(path) >= MAX_DEPTH:
            self.refuse(where, path, f"nested deeper than {MAX_DEPTH} levels (a state file needs 6)")
            return None
        if isinstance(node, dict):
            return {
                self.plain(k, self._at(node, k, where, key=True), path): self.plain(
                    v, self._at(node, k, where), (*path, str(k))
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [self.plain(v, self._at(node, i, where), (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, bool):
            return bool(node)
        if isinstance(node, int | float):
            if "_" in (token := self._token(where)):
                self.refuse(where, path, f"{token}: a number written with underscores; write its digits only")
            return int(node) if isinstance(node, int) else float(node)
        if isinstance(node, str):
            self._check_text(str(node), where, path)
            return str(node)
        return node

    @staticmethod
    def _at(node: Any, index: Any, where: tuple[int, int], key: bool = False) -> tuple[int, int]:
        """Where a mapping's key or value, or a list's item, stands (merged keys: where their mapping does)."""
        try:
            lc = node.lc
            if isinstance(node, list):
                line, col = lc.item(index)
            else:
                line, col = lc.key(index) if key else lc.value(index)
        except (AttributeError, KeyError, IndexError, TypeError):
            return where
        return line + 1, col + 1

    def _token(self, where: tuple[int, int]) -> str:
        line = self.lines[where[0] - 1] if 0 < where[0] <= len(self.lines) else ""
        rest = line[where[1] - 1 :]
        return rest.split()[0].rstrip(",]}") if rest.split() else ""

    def _check_text(self, text: str, where: tuple[int, int], path: FieldPath) -> None:
        for char in text:
            code = ord(char)
            if 0xD800 <= code <= 0xDFFF:
                self.refuse(where, path, f"U+{code:04X} is a lone surrogate, not a character: remove the escape")
                return
            if code in _INVISIBLE or (code < 0x20 and char not in "\t\n") or 0x7F <= code <= 0x9F:
                name = _INVISIBLE.get(code) or ("NUL" if code == 0 else "a control character")
                self.refuse(where, path, f"the value holds U+{code:04X} ({name}): it hides what the file says")
                return


def _deepest(text: str) -> tuple[int, int]:
    """Where flow brackets first nest deeper than MAX_DEPTH (1:1 when they do not): to point at a file too deep
    for the YAML reader itself."""
    depth, line, col = 0, 1, 0
    for char in text:
        col += 1
        if char == "\n":
            line, col = line + 1, 0
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, col
        elif char in "]}":
            depth -= 1
    return 1, 1


def _declared(data: dict[str, Any]) -> dict[str, set[str]]:
    return {
        section: {str(k) for k in data.get(section) or {}} if isinstance(data.get(section), dict) else set()
        for section in _SECTION_ENTRY
    }


def _partial_state(data: dict[str, Any]) -> DesiredState:
    """A DesiredState of only the entries that validate on their own, so cross-checks still run on the rest."""
    parts: dict[str, Any] = {}
    for section, model in _SECTION_SINGLE.items():
        try:
            parts[section] = model.model_validate(data.get(section) or {})
        except ValidationError:
            parts[section] = model()
    for section, entry_type in _SECTION_ENTRY.items():
        adapter: TypeAdapter[Any] = TypeAdapter(entry_type)
        raw = data.get(section)
        valid: dict[str, Any] = {}
        for name, value in raw.items() if isinstance(raw, dict) else []:
            try:
                valid[str(name)] = adapter.validate_python(value)
            except ValidationError:
                continue
        parts[section] = valid
    try:  # optional, and without defaults for everything: absent or invalid, it is left out
        parts["monitoring"] = Monitoring.model_validate(data["monitoring"]) if data.get("monitoring") else None
    except ValidationError:
        parts["monitoring"] = None
    return DesiredState.model_construct(**parts)


def _pydantic_problems(exc: ValidationError, root: CommentedMap, file: str) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        at_key = False
        model = _model_at(loc)
        # Drop the service-kind tag pydantic inserts after the service name.
        if len(loc) >= 3 and loc[0] == "services" and loc[2] in _SERVICE_TAGS:
            del loc[2]
        # An image given as a plain string: its error is about the string itself, not a `ref` field.
        if len(loc) == 3 and loc[0] == "images" and loc[2] == "ref" and isinstance(_node(root, loc[:2]), str):
            loc.pop()
        # Drop wrappers pydantic adds for validators ("function-after[...]") and dict keys ("[key]").
        if loc and loc[-1] == "[key]":
            loc.pop()
            at_key = True
        loc = [part for part in loc if not (isinstance(part, str) and part.startswith("function-"))]
        message = err["msg"]
        if err["type"] == "missing":
            message = "required field missing"
        elif err["type"] == "extra_forbidden":
            message = _unknown_field_message(str(loc[-1]), model)
            at_key = True
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif err["type"] in _TYPE_ERRORS:  # strict types: say what the YAML gave, which is what surprises people
            message += f", not {_yaml_kind(err['input'])}"
        problems.append(_locate(root, file, tuple(loc), message, at_key))
    return problems


_TYPE_ERRORS = {
    "int_type",
    "float_type",
    "bool_type",
    "string_type",
    "list_type",
    "dict_type",
    "finite_number",
    "model_type",
    "model_attributes_type",
}


def _yaml_kind(value: Any) -> str:
    """A YAML value as its author wrote it: `true`, a string 'x', 8000.0, .inf, a list, a mapping."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, float):
        return (
            ".nan" if value != value else ".inf" if value in (float("inf"), float("-inf")) else f"the number {value!r}"
        )
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _model_at(loc: list[Any]) -> type[BaseModel] | None:
    """The model that owns the last element of a pydantic error location (for 'unknown field' hints)."""
    if len(loc) == 1:
        return DesiredState
    head = loc[0]
    if len(loc) == 2 and head in _SECTION_SINGLE:
        return _SECTION_SINGLE[head]
    if len(loc) == 2 and head == "monitoring":
        return Monitoring
    if head == "services" and len(loc) >= 3:
        if len(loc) >= 5 and loc[3] == "expect":
            return Expect
        return _SERVICE_MODELS.get(loc[2]) if len(loc) == 4 else None
    if len(loc) == 3 and head in _SECTION_ENTRY and head != "images":
        return _SECTION_ENTRY[head]
    if len(loc) == 3 and head == "images":
        return Image
    return None


def _unknown_field_message(field: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown field"
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(field, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field{hint} (allowed: {', '.join(allowed)})"


def _node(root: Any, path: list[Any]) -> Any:
    node = root
    for part in path:
        if isinstance(node, dict) and (key := _find_key(node, part)) is not None:
            node = node[key]
        else:
            return None
    return node


def _locate(root: CommentedMap, file: str, path: FieldPath, message: str, at_key: bool) -> Problem:
    line, col = position(root, path, at_key)
    return Problem(file, line, col, _dotted(path) or "<root>", message)


def _dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool) and out
            else (f".{part}" if out else str(part))
        )
    return out


def position(root: Any, path: FieldPath, at_key: bool = False) -> tuple[int, int]:
    """1-based (line, column) of the node at `path`: its value, or its key when `at_key`.
    A path that leaves the document (a missing field) points at the deepest node that exists."""
    node = root
    line, col = 0, 0
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, CommentedMap):
            key = _find_key(node, part)
            if key is None:
                break
            kline, kcol = node.lc.key(key)
            vline, vcol = node.lc.value(key)
            line, col = (kline, kcol) if (last and at_key) or not last else (vline, vcol)
            if not last and isinstance(node[key], (CommentedMap, CommentedSeq)):
                line, col = kline, kcol
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break
    return line + 1, col + 1


def _find_key(node: dict[Any, Any], part: str | int) -> Any:
    if part in node:
        return part
    for key in node:
        if str(key) == str(part):
            return key
    return None
