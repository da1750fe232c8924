"""Access Control Expressions (ACEs) after MapR: parse, evaluate, print, and the data-access rule.

This module decides whether one principal may do one operation given the ACEs and mode bits it is
handed; it never looks anything up, never grants on error, and never trusts unparsed text.

Grammar (whitespace — any Unicode space — allowed between tokens, never inside one)::

    expression := "" (empty or blank text: nobody) | or
    or         := and ("|" and)*
    and        := unary ("&" unary)*
    unary      := "!" unary | primary
    primary    := "u:" NAME | "g:" NAME | "r:" NAME | "p" | '""' | "(" or ")"
    NAME       := one or more Unicode letters or digits or any of  _ - . @ $ + / \\

So ``!`` binds tighter than ``&``, which binds tighter than ``|`` (as MapR documents). Keywords are
lower case. ``p`` is everybody; ``""`` (two double quotes, usable anywhere a term is) and the empty
text are nobody. NAME covers POSIX portable user names, Samba machine accounts (``host$``),
Kerberos principals (``svc/host@REALM``) and ``DOMAIN\\user``; it excludes the operators, ``:``,
``,``, ``"`` and whitespace. Names compare exactly (case-sensitive, no Unicode normalisation).
Expressions are at most 64 KiB of UTF-8 and nest (parentheses and ``!``) at most 128 deep.
Syntax errors raise :class:`AceSyntaxError` (an ``InvalidInput``) naming the 0-based character
offset into the text and what was expected there.

MapR semantics kept (``check_access``): a data access needs the volume's ACE for the operation
(readAce for reads, writeAce for writes) AND the file/directory ACE for that access type where one
is set, otherwise the POSIX mode bits (owner, else owning group, else other; one class only, as
POSIX) — readfile/readdir ↔ r, writefile/addchild/deletechild ↔ w, executefile/lookupdir ↔ x.
One deliberate difference: MapR grants when *either* a set ACE or the mode bits allow, and warns
that a later chmod may silently widen access; here a set ACE replaces the mode bits for its access
type, so a deny-list ACE (``p & !u:intern``) cannot be undone by ``chmod``. New children inherit
their directory's ACEs (files only the file kinds), as in MapR.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from typing import Literal, Protocol

from medfabric.errors import InvalidInput

MAX_ACE_BYTES = 64 * 1024
MAX_NESTING = 128
NAME_PUNCTUATION = frozenset("_-.@$+/\\")


class AcePrincipal(Protocol):
    """Whom an expression is evaluated for (the service's Principal satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> AbstractSet[str]: ...

    @property
    def roles(self) -> AbstractSet[str]: ...


class AceSyntaxError(InvalidInput):
    """An ACE that does not parse; ``position`` is the 0-based offset of the offending character."""

    def __init__(self, text: str, position: int, expected: str) -> None:
        found = repr(text[position]) if position < len(text) else "end of expression"
        super().__init__(f"invalid ACE at position {position}: expected {expected}, found {found}")
        self.position = position
        self.expected = expected


def is_valid_name(name: str) -> bool:
    """True if ``name`` may follow ``u:``, ``g:`` or ``r:`` (also used for ACL principals)."""
    return bool(name) and all(ch.isalnum() or ch in NAME_PUNCTUATION for ch in name)


# --------------------------------------------------------------------------------------------- AST


class Ace:
    """Base of the immutable, hashable expression tree; build it with ``parse_ace`` or the nodes."""

    __slots__ = ()

    def evaluate(self, principal: AcePrincipal) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        return format_ace(self)


def _check_name(kind: str, name: str) -> None:
    if not is_valid_name(name):
        raise InvalidInput(f"invalid {kind} name in ACE: {name!r}")


@dataclass(frozen=True, slots=True)
class AceUser(Ace):
    name: str

    def __post_init__(self) -> None:
        _check_name("user", self.name)

    def evaluate(self, principal: AcePrincipal) -> bool:
        return principal.name == self.name


@dataclass(frozen=True, slots=True)
class AceGroup(Ace):
    name: str

    def __post_init__(self) -> None:
        _check_name("group", self.name)

    def evaluate(self, principal: AcePrincipal) -> bool:
        return self.name in principal.groups


@dataclass(frozen=True, slots=True)
class AceRole(Ace):
    name: str

    def __post_init__(self) -> None:
        _check_name("role", self.name)

    def evaluate(self, principal: AcePrincipal) -> bool:
        return self.name in principal.roles


@dataclass(frozen=True, slots=True)
class AcePublic(Ace):
    def evaluate(self, principal: AcePrincipal) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class AceNobody(Ace):
    def evaluate(self, principal: AcePrincipal) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class AceNot(Ace):
    operand: Ace

    def evaluate(self, principal: AcePrincipal) -> bool:
        return not self.operand.evaluate(principal)


def _flatten(kind: type[AceAnd | AceOr], operands: Iterable[Ace]) -> tuple[Ace, ...]:
    flat: list[Ace] = []
    for operand in operands:
        if isinstance(operand, AceAnd | AceOr) and type(operand) is kind:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    if len(flat) < 2:
        raise ValueError(f"{kind.__name__} needs at least two operands")
    return tuple(flat)


@dataclass(frozen=True, slots=True)
class AceAnd(Ace):
    """``a & b & …``; nested ANDs are flattened on construction, so the tree has one canonical shape."""

    operands: tuple[Ace, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", _flatten(AceAnd, self.operands))

    def evaluate(self, principal: AcePrincipal) -> bool:
        return all(operand.evaluate(principal) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class AceOr(Ace):
    """``a | b | …``; nested ORs are flattened on construction."""

    operands: tuple[Ace, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", _flatten(AceOr, self.operands))

    def evaluate(self, principal: AcePrincipal) -> bool:
        return any(operand.evaluate(principal) for operand in self.operands)


ACE_PUBLIC: Ace = AcePublic()
ACE_NOBODY: Ace = AceNobody()


# ------------------------------------------------------------------------------------------ parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, expected: str) -> AceSyntaxError:
        return AceSyntaxError(self.text, self.pos, expected)

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Ace:
        if not self.peek():
            return ACE_NOBODY
        expression = self.parse_or()
        if self.peek():
            raise self.fail("'&', '|' or end of expression")
        return expression

    def parse_or(self) -> Ace:
        operands = [self.parse_and()]
        while self.peek() == "|":
            self.pos += 1
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else AceOr(tuple(operands))

    def parse_and(self) -> Ace:
        operands = [self.parse_unary()]
        while self.peek() == "&":
            self.pos += 1
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else AceAnd(tuple(operands))

    def parse_unary(self) -> Ace:
        # Negations are counted in a loop, not by recursion, so '!!!…' cannot exhaust the stack.
        negations = 0
        while self.peek() == "!":
            self.enter()
            negations += 1
            self.pos += 1
        term = self.parse_primary()
        for _ in range(negations):
            term = AceNot(term)
        self.depth -= negations
        return term

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"at most {MAX_NESTING} nested '(' and '!'")

    def parse_primary(self) -> Ace:
        char = self.peek()
        text, start = self.text, self.pos
        if char == "(":
            self.enter()
            self.pos += 1
            inner = self.parse_or()
            if self.peek() != ")":
                raise self.fail(f"')' to close the '(' at position {start}")
            self.pos += 1
            self.depth -= 1
            return inner
        if char == '"':
            if text.startswith('""', start):
                self.pos += 2
                return ACE_NOBODY
            self.pos += 1
            raise self.fail('\'"\' (the empty expression is written "")')
        if char == "p" and not self._name_char_at(start + 1) and not text.startswith(":", start + 1):
            self.pos += 1
            return ACE_PUBLIC
        if char in ("u", "g", "r") and text.startswith(":", start + 1):
            self.pos = start + 2
            end = self.pos
            while self._name_char_at(end):
                end += 1
            if end == self.pos:
                raise self.fail(f"a name after '{char}:'")
            name, self.pos = text[self.pos : end], end
            return AceUser(name) if char == "u" else AceGroup(name) if char == "g" else AceRole(name)
        raise self.fail("a term: 'u:NAME', 'g:NAME', 'r:NAME', 'p', '\"\"', '!' or '('")

    def _name_char_at(self, index: int) -> bool:
        if index >= len(self.text):
            return False
        char = self.text[index]
        return char.isalnum() or char in NAME_PUNCTUATION


def parse_ace(text: str) -> Ace:
    """Parse an ACE; raises ``AceSyntaxError`` (``InvalidInput``) with the failing position."""
    if not isinstance(text, str):
        raise InvalidInput(f"an ACE must be text, not {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_ACE_BYTES:
        raise InvalidInput(f"ACE is {size} bytes; at most {MAX_ACE_BYTES} (64 KiB) are allowed")
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------- formatter


def format_ace(ace: Ace) -> str:
    """Canonical text: minimal parentheses, one space around ``&``/``|``; re-parses to an equal AST."""
    if isinstance(ace, AceNobody):
        return ""
    return _format(ace)


def _format(ace: Ace) -> str:
    if isinstance(ace, AceUser):
        return f"u:{ace.name}"
    if isinstance(ace, AceGroup):
        return f"g:{ace.name}"
    if isinstance(ace, AceRole):
        return f"r:{ace.name}"
    if isinstance(ace, AcePublic):
        return "p"
    if isinstance(ace, AceNobody):
        return '""'
    if isinstance(ace, AceNot):
        inner = _format(ace.operand)
        return f"!({inner})" if isinstance(ace.operand, AceAnd | AceOr) else f"!{inner}"
    if isinstance(ace, AceAnd):
        return " & ".join(f"({_format(op)})" if isinstance(op, AceOr) else _format(op) for op in ace.operands)
    if isinstance(ace, AceOr):
        return " | ".join(_format(op) for op in ace.operands)
    raise TypeError(f"not an ACE node: {ace!r}")


# ----------------------------------------------------------------------------- file & dir ACEs


class AccessOp(enum.StrEnum):
    """A data operation as ``check_access`` sees it."""

    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    READDIR = "readdir"
    ADDCHILD = "addchild"
    DELETECHILD = "deletechild"
    LOOKUPDIR = "lookupdir"


# op -> (FileAces field, POSIX permission bit for "other" (shifted for group/owner), volume ACE kind)
_OP_RULES: dict[AccessOp, tuple[str, int, Literal["read", "write"]]] = {
    AccessOp.READ: ("readfile", 0o4, "read"),
    AccessOp.WRITE: ("writefile", 0o2, "write"),
    AccessOp.EXECUTE: ("executefile", 0o1, "read"),
    AccessOp.READDIR: ("readdir", 0o4, "read"),
    AccessOp.ADDCHILD: ("addchild", 0o2, "write"),
    AccessOp.DELETECHILD: ("deletechild", 0o2, "write"),
    AccessOp.LOOKUPDIR: ("lookupdir", 0o1, "read"),
}

FILE_ACE_KINDS = ("readfile", "writefile", "executefile")
DIR_ACE_KINDS = ("readdir", "addchild", "deletechild", "lookupdir")


@dataclass(frozen=True, slots=True)
class FileAces:
    """The optional per-file/directory ACEs; ``None`` means "not set: mode bits decide"."""

    readfile: Ace | None = None
    writefile: Ace | None = None
    executefile: Ace | None = None
    readdir: Ace | None = None
    addchild: Ace | None = None
    deletechild: Ace | None = None
    lookupdir: Ace | None = None

    @classmethod
    def parse(cls, **texts: str | None) -> FileAces:
        """``FileAces.parse(readfile="g:radiology", addchild="u:pacs")``; unknown kinds are refused."""
        unknown = sorted(set(texts) - set(FILE_ACE_KINDS + DIR_ACE_KINDS))
        if unknown:
            raise InvalidInput(f"unknown ACE kind(s): {', '.join(unknown)}")
        return cls(**{kind: None if text is None else parse_ace(text) for kind, text in texts.items()})

    def for_op(self, op: AccessOp | str) -> Ace | None:
        ace: Ace | None = getattr(self, _OP_RULES[_access_op(op)][0])
        return ace

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def merged(self, update: FileAces) -> FileAces:
        """MapR's ``setace`` without ``-setinherit``: kinds set in ``update`` replace, others stay."""
        values: dict[str, Ace | None] = {}
        for f in fields(self):
            new = getattr(update, f.name)
            values[f.name] = new if new is not None else getattr(self, f.name)
        return FileAces(**values)

    def for_new_child(self, *, is_directory: bool) -> FileAces:
        """What a new child of this directory inherits: all kinds for a directory, file kinds for a file."""
        if is_directory:
            return self
        return FileAces(readfile=self.readfile, writefile=self.writefile, executefile=self.executefile)

    def texts(self) -> dict[str, str]:
        """The kinds that are set, as canonical text (for ``getace`` output)."""
        return {f.name: format_ace(ace) for f in fields(self) if (ace := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    reason: str  # one line for the audit record's detail

    def __bool__(self) -> bool:
        return self.allowed


def _access_op(op: AccessOp | str) -> AccessOp:
    try:
        return AccessOp(op)
    except ValueError:
        allowed = ", ".join(o.value for o in AccessOp)
        raise InvalidInput(f"unknown access operation {op!r}; expected one of {allowed}") from None


def volume_ace_kind(op: AccessOp | str) -> Literal["read", "write"]:
    """Which of a volume's two ACEs (readAce / writeAce) governs ``op``."""
    return _OP_RULES[_access_op(op)][2]


def mode_permits(principal: AcePrincipal, bit: int, *, mode: int, owner: str, group: str) -> bool:
    """POSIX class selection: the owner's bits, else the group's, else other's (never a union)."""
    if principal.name == owner:
        return bool(mode & (bit << 6))
    if group in principal.groups:
        return bool(mode & (bit << 3))
    return bool(mode & bit)


def decide_access(
    principal: AcePrincipal,
    op: AccessOp | str,
    *,
    volume_ace: Ace,
    file_aces: FileAces | None,
    mode: int,
    owner: str,
    group: str,
) -> AccessDecision:
    """MapR's rule for one data access, with the reason (see the module docstring)."""
    access = _access_op(op)
    if not 0 <= mode <= 0o7777:
        raise InvalidInput(f"mode {mode:#o} is not a permission mode (0..0o7777)")
    kind, bit, volume_kind = _OP_RULES[access]
    if not volume_ace.evaluate(principal):
        return AccessDecision(False, f"volume {volume_kind}Ace denies {access.value}")
    ace = file_aces.for_op(access) if file_aces is not None else None
    if ace is not None:
        allowed = ace.evaluate(principal)
        return AccessDecision(allowed, f"{kind} ACE {'allows' if allowed else 'denies'} {access.value}")
    allowed = mode_permits(principal, bit, mode=mode, owner=owner, group=group)
    who = "owner" if principal.name == owner else "group" if group in principal.groups else "other"
    letter = {0o4: "r", 0o2: "w", 0o1: "x"}[bit]
    verdict = "allows" if allowed else "denies"
    return AccessDecision(allowed, f"mode {mode & 0o777:03o} {verdict} {who} {letter} for {access.value}")


def check_access(
    principal: AcePrincipal,
    op: AccessOp | str,
    *,
    volume_ace: Ace,
    file_aces: FileAces | None,
    mode: int,
    owner: str,
    group: str,
) -> bool:
    """True if ``principal`` may do ``op``; ``volume_ace`` is the volume's ACE for ``volume_ace_kind(op)``."""
    return decide_access(
        principal, op, volume_ace=volume_ace, file_aces=file_aces, mode=mode, owner=owner, group=group
    ).allowed
