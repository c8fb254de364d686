"""What the write path can store (tables.storable): NUL and lone surrogates are found anywhere
in a transaction's ids and in what it changes, however deep, keys included."""

from __future__ import annotations

import pytest

from tables.schema import Analysis, Change
from tables.storable import UnstorableText, check_analysis, check_text, storable


def test_plain_text_of_any_script_is_storable():
    assert storable("naïve 日本 🙂 \n\t")
    check_text("a value", {"k": ["naïve", {"deep": "🙂"}]})


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x\udfff"])
def test_nul_and_lone_surrogates_are_found_in_values_and_keys(bad):
    assert not storable(bad)
    for value in (bad, [1, [bad]], {"k": {"j": bad}}, {bad: 1}):
        with pytest.raises(UnstorableText) as raised:
            check_text("a value", value)
        assert raised.value.code == "bad-text"


def test_an_analysis_is_checked_on_what_it_stores_not_on_old_values():
    stored_before = Change("items", ("a",), "map", key="title", action="update", old="x\x00")
    check_analysis(Analysis(changes=[stored_before], touched={("items", "a")}))
    for analysis in (
        Analysis(touched={("items", "a\x00")}),
        Analysis(changes=[Change("items", ("a",), "map", key="t\x00", action="add", new=1)]),
        Analysis(changes=[Change("items", ("a", "title"), "text", inserted=[(0, "\x00")])]),
        Analysis(changes=[Change("items", ("a",), "map", key="t", action="add", new={"x": "\0"})]),
    ):
        with pytest.raises(UnstorableText):
            check_analysis(analysis)
