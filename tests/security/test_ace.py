"""ACE grammar, evaluation, canonical printing and MapR's data-access rule."""

from __future__ import annotations

import dataclasses
import re
import stat
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfabric.errors import InvalidInput
from medfabric.security.ace import (
    ACE_NOBODY,
    ACE_PUBLIC,
    MAX_ACE_BYTES,
    MAX_NESTING,
    AccessOp,
    Ace,
    AceAnd,
    AceGroup,
    AceNobody,
    AceNot,
    AceOr,
    AcePublic,
    AceRole,
    AceSyntaxError,
    AceUser,
    FileAces,
    check_access,
    decide_access,
    format_ace,
    is_valid_name,
    parse_ace,
    volume_ace_kind,
)


@dataclass(frozen=True)
class Who:
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)


ALICE = Who("alice", frozenset({"radiology", "staff"}), frozenset({"clinician"}))
BOB = Who("bob", frozenset({"research"}), frozenset())
INTERN = Who("intern", frozenset({"radiology"}), frozenset())


# ------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("u:alice", AceUser("alice")),
        ("g:radiology", AceGroup("radiology")),
        ("r:clinician", AceRole("clinician")),
        ("p", ACE_PUBLIC),
        ("", ACE_NOBODY),
        ("   \t\n", ACE_NOBODY),
        ('""', ACE_NOBODY),
        ('  ""  ', ACE_NOBODY),
        ("!u:bob", AceNot(AceUser("bob"))),
        ("!!u:bob", AceNot(AceNot(AceUser("bob")))),
        ("! u:bob", AceNot(AceUser("bob"))),
        ("u:a&u:b", AceAnd((AceUser("a"), AceUser("b")))),
        ("u:a | u:b | u:c", AceOr((AceUser("a"), AceUser("b"), AceUser("c")))),
        # precedence: ! > & > |
        ("u:a | u:b & u:c", AceOr((AceUser("a"), AceAnd((AceUser("b"), AceUser("c")))))),
        ("u:a & u:b | u:c", AceOr((AceAnd((AceUser("a"), AceUser("b"))), AceUser("c")))),
        ("!u:a & u:b", AceAnd((AceNot(AceUser("a")), AceUser("b")))),
        ("!(u:a & u:b)", AceNot(AceAnd((AceUser("a"), AceUser("b"))))),
        ("(u:a | u:b) & u:c", AceAnd((AceOr((AceUser("a"), AceUser("b"))), AceUser("c")))),
        # redundant parentheses and nesting flatten to one canonical tree
        ("((u:a))", AceUser("a")),
        ("(u:a & u:b) & u:c", AceAnd((AceUser("a"), AceUser("b"), AceUser("c")))),
        ("u:a | (u:b | u:c)", AceOr((AceUser("a"), AceUser("b"), AceUser("c")))),
        ('u:a | ""', AceOr((AceUser("a"), ACE_NOBODY))),
        ("p&!u:intern", AceAnd((ACE_PUBLIC, AceNot(AceUser("intern"))))),
    ],
)
def test_parse(text: str, expected: Ace) -> None:
    assert parse_ace(text) == expected


@pytest.mark.parametrize(
    "name",
    [
        "alice",
        "a.b-c_d",
        "jdoe@EXAMPLE.ORG",
        "svc/host.example.org@REALM",
        "HOSPITAL\\jdoe",
        "workstation$",
        "user+tag",
        "1001",
        "josé",
        "Łukasz",
        "山田",
    ],
)
def test_names_are_at_least_as_permissive_as_unix_and_ldap(name: str) -> None:
    assert is_valid_name(name)
    for prefix, node in (("u", AceUser), ("g", AceGroup), ("r", AceRole)):
        assert parse_ace(f"{prefix}:{name}") == node(name)


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("u:", 2, "a name after 'u:'"),
        ("g: x", 2, "a name after 'g:'"),
        ("u:a &", 5, "a term"),
        ("u:a & | u:b", 6, "a term"),
        ("(u:a", 4, "')' to close the '(' at position 0"),
        ("  (u:a | (u:b)", 14, "')' to close the '(' at position 2"),
        ("u:a)", 3, "'&', '|' or end"),
        ("u:a u:b", 4, "'&', '|' or end"),
        ("x:a", 0, "a term"),
        ("U:alice", 0, "a term"),
        ("u :alice", 0, "a term"),
        ("pu", 0, "a term"),
        ("p:x", 0, "a term"),
        ('"x"', 1, "'\"'"),
        ("u:a && u:b", 5, "a term"),
        ("u:a, u:b", 3, "'&', '|' or end"),
        ("!", 1, "a term"),
        ("()", 1, "a term"),
    ],
)
def test_syntax_errors_name_position_and_expectation(text: str, position: int, expected: str) -> None:
    with pytest.raises(AceSyntaxError) as caught:
        parse_ace(text)
    assert caught.value.position == position
    assert expected in caught.value.expected
    assert f"position {position}" in caught.value.message
    assert isinstance(caught.value, InvalidInput)


def test_error_message_shows_what_was_found() -> None:
    with pytest.raises(InvalidInput, match=r"position 4: expected .* found 'u'"):
        parse_ace("u:a u:b")
    with pytest.raises(InvalidInput, match="found end of expression"):
        parse_ace("u:a |")


def test_size_limit_is_64_kib_of_utf8() -> None:
    at_limit = "u:" + "a" * (MAX_ACE_BYTES - 2)
    assert parse_ace(at_limit) == AceUser("a" * (MAX_ACE_BYTES - 2))
    with pytest.raises(InvalidInput, match="64 KiB"):
        parse_ace(at_limit + "a")
    # counted in bytes, not characters: 'é' is two bytes in UTF-8
    with pytest.raises(InvalidInput, match="64 KiB"):
        parse_ace("u:" + "é" * (MAX_ACE_BYTES // 2))


def test_a_large_flat_expression_parses() -> None:
    text = " | ".join(f"u:user{i}" for i in range(5000))
    ace = parse_ace(text)
    assert isinstance(ace, AceOr) and len(ace.operands) == 5000
    assert ace.evaluate(Who("user4999")) and not ace.evaluate(Who("user5000"))
    assert parse_ace(format_ace(ace)) == ace


def test_nesting_is_bounded_instead_of_exhausting_the_stack() -> None:
    assert parse_ace("(" * MAX_NESTING + "p" + ")" * MAX_NESTING) == ACE_PUBLIC
    assert parse_ace("!" * MAX_NESTING + "p").evaluate(ALICE) is (MAX_NESTING % 2 == 0)
    with pytest.raises(AceSyntaxError, match="nested"):
        parse_ace("(" * (MAX_NESTING + 1) + "p" + ")" * (MAX_NESTING + 1))
    with pytest.raises(AceSyntaxError, match="nested"):
        parse_ace("!" * (MAX_NESTING + 1) + "p")
    with pytest.raises(AceSyntaxError, match="nested"):
        parse_ace("(!" * 70 + "p" + ")" * 70)
    with pytest.raises(AceSyntaxError):
        parse_ace("(" * 30_000)  # far past the limit: still a clean error, not RecursionError


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_ace(b"u:a")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "alice", "bob", "intern"),
    [
        ("p", True, True, True),
        ("", False, False, False),
        ('""', False, False, False),
        ("u:alice", True, False, False),
        ("g:radiology", True, False, True),
        ("r:clinician", True, False, False),
        ("g:radiology & !u:intern", True, False, False),
        ("p & !u:intern", True, True, False),
        ("u:bob | g:radiology & r:clinician", True, True, False),
        ("(u:bob | g:radiology) & r:clinician", True, False, False),
        ("!g:radiology", False, True, False),
        ('p & ""', False, False, False),
        ('!""', True, True, True),
    ],
)
def test_evaluate(text: str, alice: bool, bob: bool, intern: bool) -> None:
    ace = parse_ace(text)
    assert (ace.evaluate(ALICE), ace.evaluate(BOB), ace.evaluate(INTERN)) == (alice, bob, intern)


def test_names_compare_exactly() -> None:
    assert not parse_ace("u:Alice").evaluate(ALICE)
    assert not parse_ace("g:Radiology").evaluate(ALICE)


def test_constants() -> None:
    assert format_ace(ACE_PUBLIC) == "p" and format_ace(ACE_NOBODY) == ""
    assert ACE_PUBLIC.evaluate(BOB) and not ACE_NOBODY.evaluate(ALICE)
    assert AcePublic() == ACE_PUBLIC and AceNobody() == ACE_NOBODY
    assert str(parse_ace("u:a&u:b")) == "u:a & u:b"


def test_ast_is_immutable_and_hashable() -> None:
    ace = parse_ace("(u:a | g:b) & !r:c")
    assert hash(ace) == hash(parse_ace(" ( u:a|g:b )&!r:c "))
    assert len({ace, parse_ace("(u:a | g:b) & !r:c"), parse_ace("u:a")}) == 2
    assert isinstance(ace, AceAnd)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ace.operands = ()  # type: ignore[misc]
    conjunction: Ace = AceAnd((AceUser("a"), AceUser("b")))
    assert conjunction != AceOr((AceUser("a"), AceUser("b")))


def test_nodes_refuse_what_could_not_be_printed() -> None:
    with pytest.raises(InvalidInput):
        AceUser("two words")
    with pytest.raises(InvalidInput):
        AceGroup("")
    with pytest.raises(InvalidInput):
        AceRole("a:b")
    with pytest.raises(ValueError, match="two operands"):
        AceAnd((AceUser("a"),))


def test_programmatic_trees_flatten_like_parsed_ones() -> None:
    built = AceAnd((AceAnd((AceUser("a"), AceUser("b"))), AceUser("c")))
    assert built == parse_ace("u:a & u:b & u:c")
    assert parse_ace(format_ace(built)) == built


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("u:a&u:b|u:c", "u:a & u:b | u:c"),
        ("(u:a|u:b)&u:c", "(u:a | u:b) & u:c"),
        ("!(u:a|u:b)", "!(u:a | u:b)"),
        ("!(u:a&u:b)", "!(u:a & u:b)"),
        ("!((u:a))", "!u:a"),
        ("((u:a & u:b)) | (u:c)", "u:a & u:b | u:c"),
        ('u:a&""', 'u:a & ""'),
        ('""', ""),
        ("!!p", "!!p"),
    ],
)
def test_canonical_format(text: str, canonical: str) -> None:
    assert format_ace(parse_ace(text)) == canonical


# --------------------------------------------------------------------------------- properties

NAME_POOL = ["alice", "bob", "c.d", "x@Y", "ü", "svc/h@R", "a$"]
names = st.sampled_from(NAME_POOL) | st.text(
    alphabet=st.sampled_from("abcXYZ019_-.@$+/\\éß山"), min_size=1, max_size=6
)
atoms = st.one_of(
    st.builds(AceUser, names),
    st.builds(AceGroup, names),
    st.builds(AceRole, names),
    st.just(ACE_PUBLIC),
    st.just(ACE_NOBODY),
)


def _extend(children: st.SearchStrategy[Ace]) -> st.SearchStrategy[Ace]:
    operands = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(st.builds(AceNot, children), st.builds(AceAnd, operands), st.builds(AceOr, operands))


trees = st.recursive(atoms, _extend, max_leaves=24)
principals = st.builds(
    Who,
    st.sampled_from(NAME_POOL),
    st.frozensets(st.sampled_from(NAME_POOL)),
    st.frozensets(st.sampled_from(NAME_POOL)),
)


@given(trees)
@settings(max_examples=300, deadline=None)
def test_format_parse_round_trip(ace: Ace) -> None:
    text = format_ace(ace)
    assert parse_ace(text) == ace
    assert format_ace(parse_ace(text)) == text


# Texts built from the grammar with arbitrary spacing and redundant parentheses, then checked
# against Python's own evaluator: `not` > `and` > `or` is exactly the ACE precedence.
spaces = st.sampled_from(["", " ", "  ", "\t", "\n "])
atom_texts = st.one_of(
    st.builds(lambda kind, name: f"{kind}:{name}", st.sampled_from("ugr"), st.sampled_from(NAME_POOL)),
    st.just("p"),
    st.just('""'),
)


def _extend_text(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(
            lambda a, s1, op, s2, b: f"{a}{s1}{op}{s2}{b}",
            children,
            spaces,
            st.sampled_from("&|"),
            spaces,
            children,
        ),
        st.builds(lambda s, a: f"!{s}{a}", spaces, children),
        st.builds(lambda s1, a, s2: f"({s1}{a}{s2})", spaces, children, spaces),
    )


texts = st.recursive(atom_texts, _extend_text, max_leaves=16)
_ATOM = re.compile(r'([ugr]):([^\s!&|()"]+)|(?<![\w:])p(?![\w:])|""')


def reference_evaluate(text: str, principal: Who) -> bool:
    def atom(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "u":
            return str(principal.name == name)
        if kind == "g":
            return str(name in principal.groups)
        if kind == "r":
            return str(name in principal.roles)
        return "True" if match.group(0) == "p" else "False"

    python = _ATOM.sub(atom, text).replace("!", " not ").replace("&", " and ").replace("|", " or ")
    python = " ".join(python.split())  # newlines would end the Python expression
    return bool(eval(python, {"__builtins__": {}}, {})) if python else False


@given(texts, principals)
@settings(max_examples=400, deadline=None)
def test_evaluation_matches_python_reference(text: str, principal: Who) -> None:
    ace = parse_ace(text)
    assert ace.evaluate(principal) is reference_evaluate(text, principal)
    assert parse_ace(format_ace(ace)) == ace


@given(st.text(alphabet=st.sampled_from('ugrp:!&|() "a.\t'), max_size=30))
@settings(max_examples=400, deadline=None)
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        ace = parse_ace(text)
    except AceSyntaxError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert parse_ace(format_ace(ace)) == ace


# ------------------------------------------------------------------------------ file ACEs


def access(who: Who, op: str, *, volume: str = "p", mode: int = 0o750, **aces: str) -> bool:
    return check_access(
        who,
        op,
        volume_ace=parse_ace(volume),
        file_aces=FileAces.parse(**aces) if aces else None,
        mode=mode,
        owner="alice",
        group="radiology",
    )


def test_volume_ace_is_always_required() -> None:
    assert not access(BOB, "read", volume="g:radiology", mode=0o777, readfile="p")
    assert access(INTERN, "read", volume="g:radiology", mode=0o777)


def test_a_set_file_ace_replaces_the_mode_bits_for_its_access_type() -> None:
    assert access(BOB, "read", mode=0o000, readfile="u:bob")
    assert not access(INTERN, "read", mode=0o777, readfile="p & !u:intern")  # chmod cannot widen it
    assert not access(ALICE, "read", mode=0o777, readfile="")  # an empty ACE is nobody, even the owner
    # only the access type that has an ACE is replaced; the others still use the mode bits
    assert access(ALICE, "write", mode=0o700, readfile="")
    assert not access(BOB, "write", mode=0o700, readfile="p")


@pytest.mark.parametrize(
    ("who", "mode", "op", "allowed"),
    [
        (ALICE, 0o400, "read", True),
        (ALICE, 0o040, "read", False),  # the owner gets the owner's bits only, as POSIX
        (INTERN, 0o040, "read", True),
        (INTERN, 0o404, "read", False),  # group member: group bits only
        (BOB, 0o004, "read", True),
        (BOB, 0o440, "read", False),
        (ALICE, 0o200, "write", True),
        (INTERN, 0o020, "write", True),
        (BOB, 0o002, "write", True),
        (BOB, 0o775, "write", False),
        (ALICE, 0o100, "execute", True),
        (ALICE, 0o600, "execute", False),
        (ALICE, 0o400, "readdir", True),
        (ALICE, 0o300, "readdir", False),
        (INTERN, 0o020, "addchild", True),
        (INTERN, 0o050, "addchild", False),
        (INTERN, 0o020, "deletechild", True),
        (BOB, 0o005, "deletechild", False),
        (BOB, 0o001, "lookupdir", True),
        (BOB, 0o006, "lookupdir", False),
    ],
)
def test_mode_bits_without_aces(who: Who, mode: int, op: str, allowed: bool) -> None:
    assert access(who, op, mode=mode) is allowed


_STAT_BITS = {
    "r": (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH),
    "w": (stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH),
    "x": (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH),
}
_OP_LETTER = {"read": "r", "readdir": "r", "write": "w", "addchild": "w", "deletechild": "w"}
_OP_LETTER |= {"execute": "x", "lookupdir": "x"}


@given(st.integers(0, 0o7777), st.sampled_from(list(AccessOp)), st.sampled_from([ALICE, BOB, INTERN]))
def test_mode_fallback_matches_stat_module(mode: int, op: AccessOp, who: Who) -> None:
    user_bit, group_bit, other_bit = _STAT_BITS[_OP_LETTER[op.value]]
    bit = user_bit if who.name == "alice" else group_bit if "radiology" in who.groups else other_bit
    assert access(who, op.value, mode=mode) is bool(mode & bit)


def test_each_op_uses_its_own_ace_kind() -> None:
    kinds = {
        "read": "readfile",
        "write": "writefile",
        "execute": "executefile",
        "readdir": "readdir",
        "addchild": "addchild",
        "deletechild": "deletechild",
        "lookupdir": "lookupdir",
    }
    for op, kind in kinds.items():
        assert access(BOB, op, mode=0o000, **{kind: "u:bob"}), op
        for other_op in kinds:
            if other_op != op:
                assert not access(BOB, other_op, mode=0o000, **{kind: "u:bob"}), (op, other_op)


def test_volume_ace_kind() -> None:
    assert {op.value: volume_ace_kind(op) for op in AccessOp} == {
        "read": "read",
        "write": "write",
        "execute": "read",
        "readdir": "read",
        "addchild": "write",
        "deletechild": "write",
        "lookupdir": "read",
    }


def test_decide_access_explains() -> None:
    volume_denies = decide_access(
        BOB, "read", volume_ace=parse_ace("g:radiology"), file_aces=None, mode=0o777, owner="x", group="y"
    )
    assert not volume_denies and volume_denies.reason == "volume readAce denies read"
    ace_allows = decide_access(
        BOB, AccessOp.ADDCHILD, volume_ace=ACE_PUBLIC, file_aces=FileAces(addchild=parse_ace("u:bob")),
        mode=0, owner="x", group="y",
    )  # fmt: skip
    assert ace_allows and ace_allows.reason == "addchild ACE allows addchild"
    mode_denies = decide_access(
        BOB, "write", volume_ace=ACE_PUBLIC, file_aces=FileAces(), mode=0o644, owner="x", group="y"
    )
    assert not mode_denies and mode_denies.reason == "mode 644 denies other w for write"


def test_bad_op_and_mode_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown access operation 'chmod'"):
        access(ALICE, "chmod")
    with pytest.raises(InvalidInput, match="mode"):
        access(ALICE, "read", mode=0o10000)
    with pytest.raises(InvalidInput, match="mode"):
        access(ALICE, "read", mode=-1)


def test_file_aces_helpers() -> None:
    aces = FileAces.parse(readfile="g:radiology", readdir="p", addchild="u:pacs", writefile=None)
    assert aces.for_op("read") == AceGroup("radiology") and aces.for_op(AccessOp.WRITE) is None
    assert aces.texts() == {"readfile": "g:radiology", "readdir": "p", "addchild": "u:pacs"}
    assert FileAces().is_empty() and not aces.is_empty()
    merged = aces.merged(FileAces.parse(readfile="u:alice", lookupdir="p"))
    assert merged.texts() == {"readfile": "u:alice", "readdir": "p", "addchild": "u:pacs", "lookupdir": "p"}
    assert aces.for_new_child(is_directory=True) == aces
    assert aces.for_new_child(is_directory=False) == FileAces(readfile=AceGroup("radiology"))
    with pytest.raises(InvalidInput, match="unknown ACE kind"):
        FileAces.parse(readfiles="p")
    with pytest.raises(AceSyntaxError):
        FileAces.parse(readfile="u:")
    with pytest.raises(dataclasses.FrozenInstanceError):
        aces.readfile = None  # type: ignore[misc]
    assert hash(aces) == hash(FileAces.parse(readfile="g:radiology", readdir="p", addchild="u:pacs"))
