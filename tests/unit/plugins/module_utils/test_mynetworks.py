"""mynetworks: BlueMind's MyNetworksValidator/MyNetworksSanitizor as the modules predict them."""

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import mynetworks as mn


def test_split_on_spaces_and_commas_trim_and_strip_one_bang():
    assert mn.sanitized_parts(" 10.0.0.0/24,,192.0.2.1  !198.51.100.0/24 , ") == {
        "10.0.0.0/24", "192.0.2.1", "198.51.100.0/24"}


def test_entries_are_kept_as_written_not_canonicalised():
    # the server keeps a set of strings: 10.0.0.1/24 stays so, and differs from 10.0.0.0/24
    assert mn.predict("10.0.0.1/24, 10.0.0.0/24", []) == {"10.0.0.1/24", "10.0.0.0/24", "127.0.0.0/8"}


def test_a_tab_is_no_separator_for_the_server():
    with pytest.raises(mn.InvalidMyNetworksError, match="Invalid mynetworks entry"):
        mn.validate("10.0.0.0/24\t10.1.0.0/16")
    with pytest.raises(mn.InvalidMyNetworksError, match="must contain only IP or subnet"):
        mn.validate("10.0.0.1\t10.0.0.2")


@pytest.mark.parametrize("value, message", [
    ("", "empty"), ("   ", "empty"), ("mail.example.test", "only IP or subnet"),
    ("10.0.0.0/33", "0-32"), ("10.0.0.0/x", "0-32"), ("2001:db8::/129", "0-128"), ("10.0.0.0/8/1", "Invalid"),
])
def test_invalid_values_are_refused_like_the_server(value, message):
    with pytest.raises(mn.InvalidMyNetworksError, match=message):
        mn.validate(value)


def test_ipv6_with_brackets_and_masks_are_valid():
    assert mn.validate("[::1]/128 2001:db8::/32 10.0.0.0/0") == {"[::1]/128", "2001:db8::/32", "10.0.0.0/0"}


def test_server_adds_loopback_and_its_addresses():
    assert mn.predict("10.0.0.0/24", ["192.0.2.20", "192.0.2.21"]) == {
        "10.0.0.0/24", "127.0.0.0/8", "192.0.2.20/32", "192.0.2.21/32"}


def test_replace_drops_the_old_server_entries_keeps_networks_adds_the_new():
    value = "127.0.0.0/8, 192.0.2.10/32, 192.0.2.11, 192.0.2.0/24, 10.0.0.0/8, !192.0.2.10"
    assert mn.replace_addresses(value, ["192.0.2.10", "192.0.2.11"], "192.0.2.20") == [
        "10.0.0.0/8", "127.0.0.0/8", "192.0.2.0/24", "192.0.2.20/32"]


def test_replace_is_stable_once_done():
    once = mn.join(mn.replace_addresses("127.0.0.0/8, 192.0.2.10/32", ["192.0.2.10"], "192.0.2.20"))
    assert once == "127.0.0.0/8, 192.0.2.20/32"
    assert mn.join(mn.replace_addresses(once, ["192.0.2.10"], "192.0.2.20")) == once
