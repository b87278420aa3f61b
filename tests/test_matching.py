"""Topic globs and EventFilter matching agree with @flatfile/listener 1.1.2 (SPEC §3, §4)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flatjobs.events._matching import (
    FilterMatcher,
    FlatEvent,
    RouteIndex,
    TopicMatcher,
    flatten,
    js_string,
    match_event,
)

from .conftest import DATA

# ------------------------------------------------------------------ SPEC §3 topics

TOPIC_ROWS = [
    ("job:ready", True), ("job:*", True), ("*:ready", True), ("**", True), ("job:**", True),
    ("**:ready", True), ("job:re*", True), ("*", False), ("job", False), ("job:READY", False),
    ("job:ready:x", False), ("j?b:ready", True), ("job:?eady", True), ("jo**:ready", True),
    ("", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "expected"), TOPIC_ROWS)
def test_topic_table_of_spec_section_3(pattern: str, expected: bool) -> None:
    assert TopicMatcher(pattern)("job:ready") is expected


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("workbook:**", "workbook", True),
        ("workbook:**", "workbook:a:b", True),
        ("**:red", "red", True),
        ("**:red", "a:b:red", True),
        ("a:**:b", "a:b", True),
        ("a:**:b", "a:x:y:b", True),
        ("a:**:b", "a:x:y:c", False),
        ("a**b", "axxb", True),
        ("a**b", "ax:xb", False),
        ("job:ready", "job:ready:x", False),
        (r"job:\*", "job:*", True),
        (r"job:\*", "job:x", False),
        ("**:**", "anything:at:all", True),  # documented: consecutive ** act as one
        ("job::ready", "job::ready", True),  # documented: separators are literal
        ("job::ready", "job:ready", False),
    ],
)
def test_globstar_rules(pattern: str, topic: str, expected: bool) -> None:
    assert TopicMatcher(pattern)(topic) is expected


def test_a_list_of_patterns_matches_if_any_does_and_empty_list_matches_nothing() -> None:
    assert TopicMatcher(["sheet:*", "job:ready"])("job:ready")
    assert not TopicMatcher(["sheet:*", "job:created"])("job:ready")
    assert not TopicMatcher([])("job:ready")


def test_an_empty_or_non_text_topic_never_matches() -> None:
    assert not TopicMatcher("**")("")
    assert not TopicMatcher("**")(None)
    assert not TopicMatcher("**")(5)


@pytest.mark.parametrize("bad", [5, None, ["ok", 3], {"topic": "x"}])
def test_topics_that_are_not_strings_are_rejected_naming_the_value(bad: Any) -> None:
    with pytest.raises(TypeError, match="topics must be a string or a list of strings"):
        TopicMatcher(bad)


# ------------------------------------------------------------------ SPEC §4 filters

EVENT: dict[str, Any] = {
    "id": "us_evt_1",
    "topic": "workbook:submit",
    "domain": "workbook",
    "context": {"sheetId": "us_sh_1", "jobId": "us_jb_1", "empty": "", "nothing": None},
    "payload": {"job": "workbook:submit", "isPart": False, "count": 5.0, "one": 1,
                "zero": 0, "flag": True, "tags": ["a", "b:c"], "nested": {"deep": {"job": "x:y"}},
                "input": {}, "ratio": 0.000001},
    "namespaces": ["space:red", "workbook"],
}  # fmt: skip

FILTER_ROWS: list[tuple[Any, bool]] = [
    ({"context": {"sheetId": "us_sh_1"}}, True),  # nested mapping -> dotted key
    ({"context.sheetId": "us_sh_1"}, True),
    ({"context.sheetId": "us_sh_2"}, False),
    ({"job": "workbook:submit"}, True),  # bare key matches payload.job
    ({"job": "x:y"}, True),  # ... and any path ending in job
    ({"jobId": "workbook:submit"}, False),  # jobId does not match job
    ({"sheetId": "us_sh_1"}, True),
    ({"context.*": "us_sh_1"}, True),  # * one segment
    ({"*.sheetId": "us_sh_1"}, True),
    ({"*.deep": "x:y"}, False),  # payload.nested.deep.job is not one segment deep
    ({"payload.**": "x:y"}, True),
    ({"**.deep.job": "x:y"}, True),
    ({"job": ["nope", "workbook:*"]}, True),  # list value: any item
    ({"job": []}, False),  # empty list matches nothing
    ({"namespaces": "space:red"}, True),  # event list: any element
    ({"namespaces": "space:*"}, True),
    ({"namespaces": "space"}, False),
    ({"tags": "b:*"}, True),
    ({"topic": "*"}, False),  # * does not cross ':'
    ({"topic": "**"}, True),
    ({"topic": "workbook:*"}, True),
    ({"isPart": "false"}, True),  # booleans render as text
    ({"isPart": False}, True),
    ({"isPart": 0}, False),  # type-strict: 0 is not false
    ({"one": True}, False),  # 1 is not true
    ({"flag": 1}, False),
    ({"flag": True}, True),
    ({"count": "5"}, True),  # 5.0 renders as "5"
    ({"count": 5}, True),
    ({"count": "5.0"}, False),
    ({"one": "1"}, True),
    ({"ratio": "0.000001"}, True),  # JS renders 1e-6 as 0.000001
    ({"empty": "*"}, False),  # empty event text never matches a string
    ({"empty": "**"}, False),
    ({"empty": ""}, False),
    ({"sheetId": ""}, True),  # empty filter text acts as **
    ({"nothing": None}, True),  # null matches a present null
    ({"sheetId": None}, False),
    ({"missing": None}, False),  # absent never matches
    ({"missing": "**"}, False),
    ({"job": {}}, False),  # empty mapping as a value matches nothing
    ({"input": "**"}, True),  # an empty object is a leaf rendered "[object Object]"
    ({"tags": ["a", "b"]}, True),
    ({"context.sheetId": "us_sh_1", "job": "nope"}, False),  # every key must match
    ({}, True),
    (None, True),
]


@pytest.mark.parametrize(("filter", "expected"), FILTER_ROWS)
def test_filter_table_of_spec_section_4(filter: Any, expected: bool) -> None:
    assert FilterMatcher(filter)(FlatEvent(EVENT)) is expected


@pytest.mark.parametrize(
    ("bare", "expected"),
    [("sheet:*", False), ("workbook:submit", True), ("us_sh_1", True), (["a", "us_sh_1"], True),
     ("nothing-has-this", False), (True, True), (7, False)],
)  # fmt: skip
def test_a_filter_that_is_not_a_mapping_matches_as_any_value_of_the_event(
    bare: Any, expected: bool
) -> None:
    # SPEC §4: a bare value is read as {"**": value}: it matches when any value does.
    assert FilterMatcher(bare)(FlatEvent(EVENT)) is expected
    assert FilterMatcher({"**": bare})(FlatEvent(EVENT)) is expected


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes"])
def test_a_filter_that_is_no_json_value_is_rejected(bad: Any) -> None:
    with pytest.raises(TypeError, match="a filter must be a mapping"):
        FilterMatcher(bad)


def test_job_handler_string_becomes_a_job_filter() -> None:
    event = {"topic": "job:ready", "payload": {"job": "sheet:export"}}
    assert match_event(event, "job:ready", {"job": "sheet:*"})
    assert not match_event(event, "job:ready", {"job": "workbook:*"})


# ------------------------------------------------------------------ the corpus


def _corpus() -> list[tuple[dict[str, Any], bool]]:
    cases = json.loads((DATA / "matching" / "cases.json").read_text())
    expected = json.loads((DATA / "matching" / "expected.json").read_text())
    assert len(cases) == len(expected) == 2000
    return list(zip(cases, expected, strict=True))


def test_every_case_of_the_fidelity_corpus_agrees_with_the_js_listener() -> None:
    disagreements = [
        (i, case["topics"], case["filter"], want)
        for i, (case, want) in enumerate(_corpus())
        if match_event(case["event"], case["topics"], case["filter"]) is not want
    ]
    assert disagreements == []


def test_the_corpus_exercises_both_answers() -> None:
    answers = [want for _, want in _corpus()]
    assert 400 < sum(answers) < 1600


# ------------------------------------------------------------------ js_string


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5.0, "5"), (-0.0, "0"), (0.1, "0.1"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"),
        (2**70, "1.1805916207174113e+21"), (1.25e300, "1.25e+300"), (-2.5, "-2.5"),
        (float("inf"), "Infinity"), (float("nan"), "NaN"), (True, "true"), (None, "null"),
        ({"a": 1}, "[object Object]"), ([1, None, "x"], "1,,x"), ("text", "text"), (12, "12"),
    ],
)  # fmt: skip
def test_js_string_renders_like_javascript(value: Any, text: str) -> None:
    assert js_string(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_js_number_text_reads_back_as_the_same_number(x: float) -> None:
    assert float(js_string(x)) == x


# ------------------------------------------------------------------ properties

_seg_chars = st.sampled_from("ab:")
_pat_chars = st.sampled_from(["a", "b", ":", "*", "?", "**"])


def _reference(pattern: str, topic: str) -> bool:
    """An independent reference: segment-wise recursion with fnmatch-like segments."""

    def seg_match(p: str, s: str) -> bool:
        rx = "".join("[^:]" if c == "?" else "[^:]*" if c == "*" else re.escape(c) for c in p)
        return re.fullmatch(rx, s) is not None

    def rec(ps: list[str], ts: list[str]) -> bool:
        if not ps:
            return not ts
        if ps[0] == "**":
            return any(rec(ps[1:], ts[i:]) for i in range(len(ts) + 1))
        return bool(ts) and seg_match(ps[0], ts[0]) and rec(ps[1:], ts[1:])

    segments = pattern.split(":")
    collapsed = [
        s for i, s in enumerate(segments) if not (s == "**" and i and segments[i - 1] == "**")
    ]
    return bool(topic) and rec(collapsed, topic.split(":"))


@given(st.lists(_pat_chars, max_size=6).map("".join), st.lists(_seg_chars, max_size=7).map("".join))
def test_property_topic_glob_agrees_with_a_reference_matcher(pattern: str, topic: str) -> None:
    assume(pattern)
    assert TopicMatcher(pattern)(topic) is _reference(pattern, topic)


@given(st.text(st.characters(blacklist_characters="*?\\"), min_size=1, max_size=12))
def test_property_a_literal_topic_matches_exactly_itself(topic: str) -> None:
    assert TopicMatcher(topic)(topic)
    assert not TopicMatcher(topic)(topic + "x")
    assert TopicMatcher("**")(topic)


_json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "a", "a:b", "x"])
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abk"), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from("abk"), _json, max_size=4), st.sampled_from("abk"))
def test_property_a_bare_key_matches_iff_some_path_ends_with_it(
    event: dict[str, Any], key: str
) -> None:
    flat = flatten(event)
    ending = [v for p, v in flat.items() if p == key or p.endswith("." + key)]
    expected = any(
        FilterMatcher({f"{p}": "**"})(FlatEvent(event))
        for p in flat
        if p in {key} or p.endswith("." + key)
    )
    assert FilterMatcher({key: "**"})(FlatEvent(event)) is expected
    if not ending:
        assert not FilterMatcher({key: None})(FlatEvent(event))


@given(st.dictionaries(st.sampled_from("abk"), _json, max_size=4))
def test_property_flatten_keeps_every_leaf_reachable(event: dict[str, Any]) -> None:
    for path, value in flatten(event).items():
        node: Any = event
        for part in path.split("."):
            node = node[part]
        assert node == value
        assert not (isinstance(value, dict) and value)


# ------------------------------------------------------------------ the route index


def test_a_route_index_returns_the_values_of_matching_routes_in_registration_order() -> None:
    index = RouteIndex(
        [
            (TopicMatcher("job:ready"), (FilterMatcher({"job": "sheet:*"}),), "sheet jobs"),
            (TopicMatcher("**"), (), "everything"),
            (TopicMatcher("job:ready"), (FilterMatcher({"job": "workbook:export"}),), "export"),
            (TopicMatcher(["job:*", "x:y"]), (), "job globs"),
        ]
    )
    event = {"topic": "job:ready", "payload": {"job": "workbook:export"}}
    assert index.match(event) == ["everything", "export", "job globs"]
    assert index.match({"topic": "x:y"}) == ["everything", "job globs"]
    assert index.names == {"job"}


def test_a_route_index_reuses_a_view_built_by_another_index() -> None:
    first = RouteIndex([(TopicMatcher("**"), (FilterMatcher({"sheetId": "s1"}),), 1)])
    second = RouteIndex([(TopicMatcher("**"), (FilterMatcher({"job": "a:b"}),), 2)])
    event = {"topic": "t:u", "context": {"sheetId": "s1"}, "payload": {"job": "a:b"}}
    view = first.flatten(event)  # indexes "sheetId" only
    assert first.match(event, view) == [1]
    assert second.match(event, view) == [2]  # "job" was not indexed: found by a scan
