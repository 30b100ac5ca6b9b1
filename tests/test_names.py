"""Profile names: the one rule, and its hostile inputs."""

import pytest

from hermes_lifecycle.errors import InvalidName
from hermes_lifecycle.names import RESERVED_NAMES, validate_name, validate_new_name

HOSTILE = [
    "../x", "..", ".", "/", "a/b", "A", "Alice", "a b", "a;rm -rf", "a;rm -rf /", "$(reboot)", "`id`",
    "a" * 65, "", " ", "-x", "_x", "é", "alicé", "ａ", "alice\n", "alice\x00", "\nalice", "a\tb",
    "gateway-alice/..", "a'b", 'a"b', "a*", "a?", "~alice",
]
VALID = ["a", "0", "default", "alice", "a-b_c", "a" * 64, "9lives", "x-"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(InvalidName) as caught:
        validate_name(name)
    assert caught.value.exit_status == 2
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", [None, 1, b"alice", ["alice"]])
def test_non_strings_are_refused(value):
    with pytest.raises(InvalidName):
        validate_name(value)


@pytest.mark.parametrize("name", VALID)
def test_valid_names_pass(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_are_valid_but_cannot_be_created(name):
    assert validate_name(name) == name
    with pytest.raises(InvalidName, match="reserved"):
        validate_new_name(name)


def test_reserved_set_is_the_designs():
    assert RESERVED_NAMES == {"hermes", "test", "tmp", "root", "sudo"}
