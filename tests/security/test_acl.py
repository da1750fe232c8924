"""MapR-style cluster and volume ACLs: parsing, edit/set/revoke, permits, acl show."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medfabric.errors import InvalidInput
from medfabric.security.acl import CODES, Acl, AclEntry, AclType, PrincipalType, parse_entries


@dataclass(frozen=True)
class Who:
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)


RADIOLOGIST = Who("radiologist", frozenset({"clinicians"}))
DATA_SCIENTIST = Who("data_scientist", frozenset({"research"}))
NOBODY = Who("visitor")

USER = PrincipalType.USER
GROUP = PrincipalType.GROUP


def test_the_seed_command_means_what_it_says() -> None:
    # medfabric acl edit -type volume -name mri_studies -user radiologist:fc,data_scientist:r
    acl = Acl.empty(AclType.VOLUME).edit(user="radiologist:fc,data_scientist:r")
    assert acl.codes_for(RADIOLOGIST) == frozenset(CODES[AclType.VOLUME])
    assert acl.codes_for(DATA_SCIENTIST) == {"r"}
    assert acl.permits(DATA_SCIENTIST, "r") and not acl.permits(DATA_SCIENTIST, "w")
    assert not acl.permits(DATA_SCIENTIST, "m") and not acl.can_change_acl(DATA_SCIENTIST)
    assert acl.permits(RADIOLOGIST, "w") and acl.permits(RADIOLOGIST, "d") and acl.can_change_acl(RADIOLOGIST)
    assert acl.codes_for(NOBODY) == frozenset()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("radiologist:fc,data_scientist:r", {"radiologist": {"fc"}, "data_scientist": {"r"}}),
        ("jsmith:dump,restore,d", {"jsmith": {"dump", "restore", "d"}}),  # MapR's own example
        ("jsmith:dump,restore,d bob:m", {"jsmith": {"dump", "restore", "d"}, "bob": {"m"}}),  # MapR: spaces
        ("  a:r ,  b:w  ", {"a": {"r"}, "b": {"w"}}),
        ("a:r,a:w", {"a": {"r", "w"}}),
        ("a:r,w,b:m,d", {"a": {"r", "w"}, "b": {"m", "d"}}),
        ("jdoe@EXAMPLE.ORG:r", {"jdoe@EXAMPLE.ORG": {"r"}}),
    ],
)
def test_parse_entries(spec: str, expected: dict[str, set[str]]) -> None:
    assert parse_entries(AclType.VOLUME, spec) == expected


@pytest.mark.parametrize(
    ("acl_type", "spec", "message"),
    [
        (AclType.VOLUME, "alice:x", "unknown volume ACL code 'x'"),
        (AclType.VOLUME, "alice:r,cv", "unknown volume ACL code 'cv'"),
        (AclType.CLUSTER, "alice:r", "unknown cluster ACL code 'r'"),
        (AclType.CLUSTER, "alice:dump", "unknown cluster ACL code 'dump'"),
        (AclType.VOLUME, "alice:FC", "unknown volume ACL code 'FC'"),
        (AclType.VOLUME, "u:alice:r", "u:/g: prefixes belong to ACEs"),
        (AclType.VOLUME, "g:", "u:/g: prefixes belong to ACEs"),
        (AclType.VOLUME, "alice:", "no permission code"),
        (AclType.VOLUME, ":r", "invalid principal name"),
        (AclType.VOLUME, "r,alice:r", "expected name:code"),
        (AclType.VOLUME, "", "empty ACL entry list"),
        (AclType.VOLUME, " , ", "empty ACL entry list"),
        (AclType.VOLUME, "al(ice:r", "invalid principal name"),
    ],
)
def test_bad_entries_are_refused_with_the_culprit_named(acl_type: AclType, spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        parse_entries(acl_type, spec)


def test_mapr_code_sets() -> None:
    assert CODES[AclType.CLUSTER] == ("login", "ss", "cv", "cp", "a", "fc")
    assert CODES[AclType.VOLUME] == ("dump", "restore", "m", "d", "a", "fc", "r", "w")


def test_parse_users_and_groups() -> None:
    acl = Acl.parse("volume", user="radiologist:fc,data_scientist:r", group="g1:m,g2:a")
    assert acl.entries == (
        AclEntry(USER, "data_scientist", frozenset({"r"})),
        AclEntry(USER, "radiologist", frozenset({"fc"})),
        AclEntry(GROUP, "g1", frozenset({"m"})),
        AclEntry(GROUP, "g2", frozenset({"a"})),
    )
    # a user and a group may share a name; they are different principals
    both = Acl.parse(AclType.VOLUME, user="ops:r", group="ops:w")
    assert len(both.entries) == 2
    assert both.codes_for(Who("ops")) == {"r"} and both.codes_for(Who("x", frozenset({"ops"}))) == {"w"}


def test_groups_grant_to_their_members_and_combine_with_user_entries() -> None:
    acl = Acl.parse(AclType.VOLUME, user="data_scientist:w", group="research:r,clinicians:fc")
    assert acl.codes_for(DATA_SCIENTIST) == {"r", "w"}
    assert acl.permits(RADIOLOGIST, "dump")
    assert not acl.permits(Who("data_scientist"), "r")  # without the group membership


def test_fc_implies_every_code_and_a_only_acl_changes() -> None:
    cluster = Acl.parse(AclType.CLUSTER, user="root:fc,auditor:a,ops:login,ss")
    assert all(cluster.permits(Who("root"), code) for code in CODES[AclType.CLUSTER])
    assert cluster.can_change_acl(Who("auditor")) and not cluster.permits(Who("auditor"), "login")
    assert cluster.codes_for(Who("ops")) == {"login", "ss"} and not cluster.can_change_acl(Who("ops"))


def test_permits_refuses_unknown_codes() -> None:
    acl = Acl.parse(AclType.VOLUME, user="root:fc")
    with pytest.raises(InvalidInput, match="unknown volume ACL code 'login'"):
        acl.permits(Who("root"), "login")


def test_edit_adds_and_keeps_everyone_else() -> None:
    acl = Acl.parse(AclType.VOLUME, user="a:r,b:m", group="g:dump")
    edited = acl.edit(user="a:w,c:d")
    assert edited.spec(USER) == "a:r,w b:m c:d" and edited.spec(GROUP) == "g:dump"
    assert acl.spec(USER) == "a:r b:m"  # values are immutable
    assert acl.edit(group="g:restore,h:a").spec(GROUP) == "g:dump,restore h:a"


def test_set_replaces_the_whole_list() -> None:
    acl = Acl.parse(AclType.CLUSTER, user="root:fc,mapr:fc,alice:login", group="admins:a")
    replaced = acl.set(user="root:fc")
    assert replaced == Acl.parse(AclType.CLUSTER, user="root:fc")
    assert replaced.spec(GROUP) == ""


def test_revoke_removes_codes_and_empty_entries() -> None:
    acl = Acl.parse(AclType.VOLUME, user="a:r,w,b:m")
    assert acl.revoke(user="a:w").spec(USER) == "a:r b:m"
    assert acl.revoke(user="b:m").spec(USER) == "a:r,w"
    assert acl.revoke(user="nobody:r") == acl
    assert acl.revoke(user="b:m,a:r,w").entries == ()


def test_edit_set_and_revoke_need_a_user_or_a_group() -> None:
    acl = Acl.empty(AclType.VOLUME)
    for method in (acl.edit, acl.set, acl.revoke):
        with pytest.raises(InvalidInput, match="-user or -group"):
            method()
    with pytest.raises(InvalidInput, match="unknown ACL type"):
        Acl.parse("table", user="a:r")


def test_acl_show_format() -> None:
    acl = Acl.parse(AclType.CLUSTER, user="root:fc,a,login,ss,cv,lfedotov:login", group="admins:a")
    assert acl.format() == (
        "Principal      Allowed actions\n"
        "User lfedotov  [login]\n"
        "User root      [login, ss, cv, a, fc]\n"
        "Group admins   [a]"
    )
    assert acl.rows() == [
        ("User lfedotov", ("login",)),
        ("User root", ("login", "ss", "cv", "a", "fc")),
        ("Group admins", ("a",)),
    ]
    assert Acl.empty(AclType.VOLUME).format() == "Principal  Allowed actions"


def test_acl_values_are_immutable_canonical_and_hashable() -> None:
    one = Acl.parse(AclType.VOLUME, user="b:w,r a:d")
    two = Acl.parse(AclType.VOLUME, user="a:d,b:r,w")
    assert one == two and hash(one) == hash(two)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.entries = ()  # type: ignore[misc]
    with pytest.raises(InvalidInput, match="duplicate"):
        Acl(AclType.VOLUME, (AclEntry(USER, "a", frozenset({"r"})), AclEntry(USER, "a", frozenset({"w"}))))
    with pytest.raises(InvalidInput, match="unknown volume ACL code 'cv'"):
        Acl(AclType.VOLUME, (AclEntry(USER, "a", frozenset({"cv"})),))
    with pytest.raises(InvalidInput, match="invalid principal name"):
        Acl(AclType.VOLUME, (AclEntry(USER, "a b", frozenset({"r"})),))


principal_names = st.text(alphabet=st.sampled_from("abz09_-.@$"), min_size=1, max_size=6)
code_sets = st.frozensets(st.sampled_from(CODES[AclType.VOLUME]), min_size=1)
entry_maps = st.dictionaries(principal_names, code_sets, max_size=5)


@given(entry_maps, entry_maps)
def test_spec_round_trip(users: dict[str, frozenset[str]], groups: dict[str, frozenset[str]]) -> None:
    entries = [AclEntry(USER, n, c) for n, c in users.items()] + [
        AclEntry(GROUP, n, c) for n, c in groups.items()
    ]
    acl = Acl(AclType.VOLUME, tuple(entries))
    user_spec, group_spec = acl.spec(USER), acl.spec(GROUP)
    if user_spec or group_spec:
        assert Acl.parse(AclType.VOLUME, user=user_spec or None, group=group_spec or None) == acl


@given(entry_maps, entry_maps)
def test_edit_is_a_union_and_revoke_undoes_it_on_fresh_codes(
    first: dict[str, frozenset[str]], second: dict[str, frozenset[str]]
) -> None:
    base = Acl(AclType.VOLUME, tuple(AclEntry(USER, n, c) for n, c in first.items()))
    addition = Acl(AclType.VOLUME, tuple(AclEntry(USER, n, c) for n, c in second.items()))
    if not second:
        return
    edited = base.edit(user=addition.spec(USER))
    for name in set(first) | set(second):
        expected = first.get(name, frozenset()) | second.get(name, frozenset())
        assert {e.name: e.codes for e in edited.entries}.get(name, frozenset()) == expected
