"""Topic globs and EventFilter matching agree with @flatfile/listener 1.1.2 (SPEC §3, §4)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flatjobs.events._filters import FilterMatcher, FlatEvent, flatten, js_string
from flatjobs.events._globs import TopicMatcher, glob_to_regex
from flatjobs.events._globs import anchor as _anchor
from flatjobs.events._index import RouteIndex, match_event

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


def test_every_case_of_the_fidelity_corpus_agrees_when_all_share_one_route_index() -> None:
    # 2,000 routes of literal and glob topics and filter values in one index: each case's
    # own route is found for its event exactly when the JS listener runs its callback.
    corpus = _corpus()
    index = RouteIndex(
        (TopicMatcher(case["topics"]), (FilterMatcher(case["filter"]),), i)
        for i, (case, _) in enumerate(corpus)
    )
    disagreements = [
        (i, case["topics"], case["filter"], want)
        for i, (case, want) in enumerate(corpus)
        if (i in index.match(case["event"])) is not want
    ]
    assert disagreements == []


class _CountingFilter(FilterMatcher):
    """A filter that counts how often the index tests it."""

    tested = 0

    def __call__(self, event: FlatEvent) -> bool:
        _CountingFilter.tested += 1
        return super().__call__(event)


def test_a_route_index_tests_only_the_glob_routes_an_event_can_match() -> None:
    # 4,000 routes on glob topics with glob job values: an event is tested against the one
    # it matches and the few whose literal start it shares (file:op3?, file:op39? and
    # file:op399? for file:op3999s), not against every glob.
    shapes: list[tuple[str | list[str], dict[str, str]]] = [
        ("job:*", {"job": "app{k}:*"}),
        ("*:ready", {"job": "*:op{k}"}),
        ("job:**", {"job": "workbook:op{k}-*", "context.sheetId": "us_sh_*"}),
        (["records:*", "job:*"], {"job": "file:op{k}?"}),
    ]
    index = RouteIndex(
        (
            TopicMatcher(shapes[k % 4][0]),
            (_CountingFilter({key: v.format(k=k) for key, v in shapes[k % 4][1].items()}),),
            k,
        )
        for k in range(4000)
    )
    jobs = ["app{k}:export", "sheet:op{k}", "workbook:op{k}-fast", "file:op{k}s"]
    for k in (0, 1, 2, 3, 1234, 3999):
        event = {
            "topic": "job:ready",
            "context": {"sheetId": "us_sh_1"},
            "payload": {"job": jobs[k % 4].format(k=k)},
        }
        _CountingFilter.tested = 0
        assert index.match(event) == [k]
        assert _CountingFilter.tested == (len(str(k)) if k % 4 == 3 else 1)


# The anchors: every text a glob matches starts (or ends) with the glob's anchor.

_anchor_segments = st.sampled_from(
    ["a", "b", "ab", "", "*", "?", "**", "a*", "*b", "a?b", "a**b", "\\", "\\*", "a\\", "\\:"]
)


@pytest.mark.parametrize(
    ("pattern", "anchor"),
    [
        ("job:*", ("<", "job:")), ("job:re*", ("<", "job:re")), ("job:**", ("<", "job")),
        ("a:**:b", ("<", "a")), ("*:ready", (">", ":ready")), ("**:ready", (">", "ready")),
        ("a**b:c", (">", "b:c")), ("a\\:b", (">", ":b")), ("x:y", ("=", "x:y")),
        ("**", None), ("*:*", None), ("*:ready:*", None), ("\\*", None),
    ],
)  # fmt: skip
def test_a_glob_is_found_by_the_literal_text_all_its_matches_start_or_end_with(
    pattern: str, anchor: tuple[str, str] | None
) -> None:
    assert _anchor(pattern) == anchor


@settings(max_examples=300)
@given(st.lists(_anchor_segments, min_size=1, max_size=5).map(":".join), st.data())
def test_property_every_match_of_a_glob_has_its_anchor(pattern: str, data: Any) -> None:
    anchor = _anchor(pattern)
    assume(anchor is not None)
    assert anchor is not None
    regex = glob_to_regex(pattern, ":")
    text = data.draw(st.from_regex(regex, fullmatch=True, alphabet="ab:*\\"))
    side, literal = anchor
    assert literal or side == "="
    assert {"=": text.__eq__, "<": text.startswith, ">": text.endswith}[side](literal)


# The index against the straightforward linear matcher: every route tried, in order.

_glob_segments = st.sampled_from(
    ["a", "b", "ab", "", "*", "?", "**", "a*", "*b", "a**b", "\\*", "5", "true", "x" * 300]
)
_globs = st.lists(_glob_segments, min_size=1, max_size=4).map(":".join)
_texts = st.lists(
    st.sampled_from(["a", "b", "ab", "", "5", "true", "*", "x" * 300]), min_size=1, max_size=4
).map(":".join)
_numbers = st.sampled_from([0, 5, 5.0, -0.0, 1e21, 2**60, float("nan"), float("inf")])
_filter_leaves = _globs | st.none() | st.booleans() | _numbers
_filter_keys = st.sampled_from(
    ["a", "k", "a.k", "*.k", "**", "**.k", "a.*", "p.**", "", "5", "x" * 300]
)
_filter_values = st.recursive(
    _filter_leaves | st.lists(_filter_leaves, max_size=3),
    lambda inner: st.dictionaries(_filter_keys, inner, max_size=2),
    max_leaves=4,
)
_filters = st.none() | st.dictionaries(_filter_keys, _filter_values, max_size=3) | _globs
_route_topics = _globs | st.lists(_globs, max_size=3)
_random_routes = st.tuples(_route_topics, st.lists(_filters, max_size=2))
_event_leaves = _texts | st.none() | st.booleans() | _numbers
_event_values = st.recursive(
    _event_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "k", "p", "", "a.k", "5", "x" * 300]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
_events = st.builds(
    lambda topic, body: {**body, "topic": topic},
    _texts,
    st.dictionaries(st.sampled_from(["a", "k", "p", "", "a.k"]), _event_values, max_size=4),
)


def _glob_like(text: str) -> st.SearchStrategy[str]:
    """Globs made from ``text``: each segment kept, or turned into a wildcard that matches
    it, or into one that does not; a ``**`` put in or not; so that many of them match."""
    forms = [
        lambda seg: seg,
        lambda seg: seg,
        lambda seg: "*",
        lambda seg: "?" * len(seg),
        lambda seg: seg[:1] + "*",
        lambda seg: "*" + seg[-1:],
        lambda seg: "**",
        lambda seg: "**:" + seg,
        lambda seg: seg + ":**",
        lambda seg: seg + "b",  # no match
    ]
    segments = text.split(":")
    return st.lists(st.sampled_from(forms), min_size=len(segments), max_size=len(segments)).map(
        lambda chosen: ":".join(f(seg) for f, seg in zip(chosen, segments, strict=True))
    )


def _route_like(raw: dict[str, Any]) -> st.SearchStrategy[tuple[Any, list[Any]]]:
    """Routes made from the event ``raw``: topics like its topic, filters on its paths (by
    bare key, by full path, or by a glob path) with values like its values."""
    paths = sorted(flatten({k: v for k, v in raw.items() if k != "topic"}).items())
    topics = _glob_like(raw["topic"])

    def value_like(value: Any) -> st.SearchStrategy[Any]:
        text = js_string(value) if not isinstance(value, dict | list) else ""
        return st.just(value) | _glob_like(text) | st.lists(_glob_like(text) | _globs, max_size=2)

    def filter_like(path: str, value: Any) -> st.SearchStrategy[Any]:
        keys = st.sampled_from([path, path.rpartition(".")[2], "**." + path, "*." + path])
        return st.dictionaries(keys, value_like(value), min_size=1, max_size=2)

    filters = st.sampled_from(paths).flatmap(lambda pv: filter_like(*pv)) if paths else _filters
    return st.tuples(
        topics | st.lists(topics | _globs, max_size=2),
        st.lists(filters, max_size=2) | st.lists(_filters, max_size=1),
    )


def _deep(depth: int) -> dict[str, Any]:
    event: dict[str, Any] = {"k": "a:b"}
    for _ in range(depth):
        event = {"a": event}
    return {"topic": "a:b", "p": event}


def _linear(routes: list[tuple[Any, list[Any]]], raw: dict[str, Any]) -> list[int]:
    """The oracle: every route tried in registration order, by the matchers themselves."""
    flat = FlatEvent(raw)
    return [
        i
        for i, (topics, filters) in enumerate(routes)
        if TopicMatcher(topics)(raw["topic"]) and all(FilterMatcher(f)(flat) for f in filters)
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, min_size=1, max_size=3), st.data())
def test_property_a_route_index_matches_what_trying_every_route_in_order_does(
    events: list[dict[str, Any]], data: Any
) -> None:
    # Routes made from the events (so that many match) among random ones (so that most
    # do not), hostile values on both sides.
    made = st.sampled_from(events).flatmap(_route_like)
    routes = data.draw(st.lists(made | _random_routes, min_size=1, max_size=12))
    _assert_index_agrees(routes, events)


@pytest.mark.parametrize(
    ("routes", "events"),
    [
        ([("**:**", [])], [{"topic": "a:b:c"}]),
        ([("a:b", [{"k": "a:*"}]), ("**", [{"k": ""}]), ("*:b", [{"a.k": "a:**"}])], [_deep(200)]),
        ([("a", [{"k": "5"}]), ("a", [{"k": 5}]), ("a", [{"k": "true"}])], [{"topic": "a", "k": 5.0}]),
        ([("a", [{"k": "5"}, {"k": "*"}])], [{"topic": "a", "a": {"k": [[5.0], True]}}]),
        ([("a", [{"k": "a:*"}]), ("a", [{"k": ["b", "a:*"]}])], [{"topic": "a", "k": ["a:b", "b"]}]),
        ([("job:**", []), ("**:ready", []), ("*:ready", [])], [{"topic": "ready"}, {"topic": "job"}]),
        ([(["a:*", "a:b", "*:b"], [{"k": ["x*", "*x"]}])], [{"topic": "a:b", "k": "xax"}]),
        ([("a", [{"k": "x" * 5000 + "*"}])], [{"topic": "a", "k": "x" * 6000}]),
        ([("a", [{"k": True}]), ("a", [{"k": "true"}])], [{"topic": "a", "k": True}]),
        ([("a", [{"k": None}]), ("a", [{"k": "null"}])], [{"topic": "a", "k": None}]),
        ([("a", [{"k": []}]), ("a", [{"k": {}}])], [{"topic": "a", "k": []}]),
        ([("", []), ([], [])], [{"topic": "a"}, {"topic": ""}, {"topic": 5}]),
    ],
)  # fmt: skip
def test_a_route_index_agrees_with_trying_every_route_on_hostile_cases(
    routes: list[tuple[Any, list[Any]]], events: list[dict[str, Any]]
) -> None:
    _assert_index_agrees(routes, events)


def _assert_index_agrees(routes: list[tuple[Any, list[Any]]], events: list[dict[str, Any]]) -> None:
    index = RouteIndex(
        (TopicMatcher(topics), tuple(FilterMatcher(f) for f in filters), i)
        for i, (topics, filters) in enumerate(routes)
    )
    for raw in events:
        assert index.match(raw) == _linear(routes, raw)
