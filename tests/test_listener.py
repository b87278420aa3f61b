"""Listener: registration, ordering, isolation, per-event helpers, and indexed dispatch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from flatjobs import ConfigurationError, FlatfileEvent, InvalidEventError, Listener, SecretNotFound
from flatjobs.emulator import Emulator
from flatjobs.events._index import match_event
from flatjobs.models import Event, from_wire
from flatjobs.testing import client_for, make_event

from .conftest import load_event


def recorder_callbacks(listener: Listener, log: list[str], *specs: tuple[str, Any, Any]) -> None:
    for name, topics, filter in specs:

        async def callback(event: FlatfileEvent, name: str = name) -> None:
            log.append(name)

        callback.__qualname__ = name
        listener.on(topics, filter, callback)


async def test_decorator_returns_the_function_unchanged_and_it_runs() -> None:
    listener = Listener()
    seen: list[str] = []

    async def handler(event: FlatfileEvent) -> None:
        seen.append(event.topic)

    assert listener.on("job:ready")(handler) is handler
    assert listener.on("job:*", None, handler) is handler
    result = await listener.dispatch(make_event(job="a:b"))
    assert seen == ["job:ready", "job:ready"]
    assert result.ok
    assert result.matched == 2


async def test_callbacks_run_in_registration_order_parent_before_child() -> None:
    listener = Listener()
    log: list[str] = []
    child = listener.filter({"job": "sheet:*"})
    recorder_callbacks(child, log, ("child-first-registered", "job:ready", None))
    recorder_callbacks(
        listener,
        log,
        ("a", "job:ready", None),
        ("b", "**", {"job": "sheet:*"}),
        ("c", "job:ready", {"job": "nope"}),
        ("d", ["x:y", "job:ready"], None),
    )
    grandchild = child.namespace("workbook")
    recorder_callbacks(grandchild, log, ("grandchild", "job:*", None))
    await listener.dispatch(make_event(job="sheet:dedupe", namespaces=["workbook"]))
    assert log == ["a", "b", "d", "child-first-registered", "grandchild"]


async def test_a_child_listener_only_sees_events_matching_its_filter() -> None:
    listener = Listener()
    log: list[str] = []
    recorder_callbacks(listener.filter({"job": "sheet:*"}), log, ("sheet", "job:ready", None))
    recorder_callbacks(listener.namespace(["space:red"]), log, ("red", "**", None))
    await listener.dispatch(make_event(job="workbook:export"))
    await listener.dispatch(make_event(job="sheet:export", namespaces=["space:red"]))
    assert log == ["sheet", "red"]


async def test_an_exception_is_logged_and_the_next_callback_still_runs() -> None:
    listener = Listener()
    log: list[str] = []

    @listener.on("job:ready")
    async def broken(event: FlatfileEvent) -> None:
        raise RuntimeError("kaput")

    recorder_callbacks(listener, log, ("after", "job:ready", None))
    event = make_event(job="a:b")
    with capture_logs() as logs:
        result = await listener.dispatch(event)
    assert log == ["after"]
    assert not result.ok
    assert [f.callback for f in result.failed] == [broken.__module__ + "." + broken.__qualname__]
    assert isinstance(result.failed[0].error, RuntimeError)
    (line,) = [entry for entry in logs if entry["event"] == "callback failed"]
    assert line["event_id"] == event["id"]
    assert line["topic"] == "job:ready"
    assert line["callback"].endswith("broken")
    assert line["log_level"] == "error"


async def test_after_all_runs_once_per_event_after_every_callback() -> None:
    listener = Listener()
    log: list[str] = []

    async def flush(event: FlatfileEvent) -> None:
        log.append("flush")
        event.after_all(flush)  # re-registering while running does not loop

    for name in ("one", "two"):

        async def callback(event: FlatfileEvent, name: str = name) -> None:
            log.append(name)
            event.after_all(flush)

        listener.on("job:ready", None, callback)
    result = await listener.dispatch(make_event(job="a:b"))
    assert log == ["one", "two", "flush"]
    assert result.ran[-1].endswith("flush")


async def test_cache_lives_for_one_event() -> None:
    listener = Listener()
    seen: list[int] = []

    @listener.on("job:ready")
    async def first(event: FlatfileEvent) -> None:
        event.cache["n"] = event.cache.get("n", 0) + 1

    @listener.on("job:ready")
    async def second(event: FlatfileEvent) -> None:
        seen.append(event.cache["n"])

    await listener.dispatch(make_event(job="a:b"))
    await listener.dispatch(make_event(job="a:b"))
    assert seen == [1, 1]


async def test_secrets_are_fetched_once_per_event_through_the_client() -> None:
    async with Emulator() as emu:
        emu.add_secret("db", "pw-1")
        listener = Listener(client=client_for(emu))
        values: list[str] = []

        @listener.on("job:ready")
        async def use(event: FlatfileEvent) -> None:
            values.append(await event.secrets("db"))
            values.append(await event.secrets("db"))
            with pytest.raises(SecretNotFound, match="'nope'"):
                await event.secrets("nope")

        ready = make_event(job="a:b", context={"environmentId": emu.environment_id})
        await listener.dispatch(ready)
        await listener.dispatch(ready)
        await listener.aclose()
        await listener.client.close()
    assert values == ["pw-1"] * 4
    assert [r.route for r in emu.requests] == ["secrets.list", "secrets.list"]


async def test_secrets_need_an_environment() -> None:
    listener = Listener()
    errors: list[Exception] = []

    @listener.on("**")
    async def use(event: FlatfileEvent) -> None:
        try:
            await event.secrets("x")
        except ConfigurationError as exc:
            errors.append(exc)

    await listener.dispatch({"id": "e", "topic": "a:b", "context": {}})
    assert "environmentId is required" in str(errors[0])


async def test_a_listener_needs_no_token_until_it_calls_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLATFILE_BEARER_TOKEN", raising=False)
    monkeypatch.delenv("FLATFILE_API_KEY", raising=False)
    listener = Listener()
    failures: list[Exception] = []

    @listener.on("job:ready")
    async def needs_client(event: FlatfileEvent) -> None:
        try:
            _ = event.client
        except ConfigurationError as exc:
            failures.append(exc)

    await listener.dispatch(make_event(job="a:b"))
    assert "FLATFILE_BEARER_TOKEN" in str(failures[0])


async def test_dispatch_accepts_an_event_model_and_exposes_typed_context() -> None:
    listener = Listener()
    seen: list[Any] = []

    @listener.on("job:ready", {"job": "sheet:dedupe"})
    async def handler(event: FlatfileEvent) -> None:
        seen.append(
            (event.context.sheet_slug, event.job_id, event.payload["input"], event.created_at)
        )

    await listener.dispatch(from_wire(load_event("job-ready-sheet-action"), Event))
    assert seen[0][:3] == ("contacts", "us_jb_v4w5x6", {"key": "email"})
    assert seen[0][3] is not None


async def test_an_unknown_topic_is_dispatched_like_any_other() -> None:
    listener = Listener()
    log: list[str] = []
    recorder_callbacks(listener, log, ("canvas", "canvas:*", None))
    await listener.dispatch(load_event("unknown-topic-canvas"))
    assert log == ["canvas"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1, 2], "an event must be a JSON object, got list"),
        ({"id": "e1"}, "event 'e1' has no topic"),
        ({"id": "e1", "topic": ""}, "has no topic"),
        ({"id": "e1", "topic": "a:b", "context": "x"}, "context must be an object"),
    ],
)
async def test_malformed_events_raise_invalid_event_error(bad: Any, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        await Listener().dispatch(bad)


def test_registration_rejects_a_plain_function_naming_it() -> None:
    def export(event: FlatfileEvent) -> None:
        pass

    with pytest.raises(TypeError, match=r"must be an `async def` function.*export"):
        Listener().on("job:ready", None, export)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("topics", "filter", "message"),
    [(5, None, "topics must be a string or a list of strings, got int 5"),
     (["a", None], None, "topics must be"),
     ("job:ready", object, "a filter must be a mapping.*got type")],
)  # fmt: skip
def test_registration_rejects_bad_topics_and_filters(
    topics: Any, filter: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Listener().on(topics, filter)


async def test_off_removes_matching_registrations() -> None:
    listener = Listener()
    log: list[str] = []

    async def a(event: FlatfileEvent) -> None:
        log.append("a")

    async def b(event: FlatfileEvent) -> None:
        log.append("b")

    listener.on("job:ready", None, a)
    listener.on("job:ready", {"job": "x:y"}, a)
    listener.on("job:ready", None, b)
    assert listener.off("job:ready", {"job": "x:y"}, a) == 1
    await listener.dispatch(make_event(job="x:y"))
    assert log == ["a", "b"]
    assert listener.off("job:ready", callback=a) == 1
    assert listener.off(["other"]) == 0
    log.clear()
    await listener.dispatch(make_event(job="x:y"))
    assert log == ["b"]


def test_use_calls_the_plugin_with_the_listener_and_returns_it() -> None:
    listener = Listener()
    got: list[Listener] = []
    assert listener.use(got.append) is listener
    assert got == [listener]
    with pytest.raises(TypeError, match="a plugin must be a callable"):
        listener.use("nope")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the index

_topics = st.sampled_from(
    ["job:ready", "job:*", "records:created", "**", "sheet:updated", "*:ready"]
)
_values = st.sampled_from(
    ["sheet:a", "sheet:b", "workbook:a", "sheet:*", "us_sh_1", "us_sh_2", True, None]
)
_keys = st.sampled_from(["job", "context.sheetId", "sheetId", "payload.*", "isPart"])
_filters = st.none() | st.dictionaries(_keys, _values | st.lists(_values, max_size=2), max_size=2)
_registration = st.tuples(st.one_of(_topics, st.lists(_topics, min_size=1, max_size=2)), _filters)
_child = st.none() | st.dictionaries(_keys, _values, min_size=1, max_size=1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_registration, _child), min_size=1, max_size=25),
    st.sampled_from(["job:ready", "records:created", "sheet:updated"]),
    st.sampled_from(["sheet:a", "sheet:b", "workbook:a"]),
    st.sampled_from(["us_sh_1", "us_sh_2"]),
)
def test_property_indexed_dispatch_selects_exactly_what_brute_force_does(
    specs: list[Any], topic: str, job: str, sheet: str
) -> None:
    listener = Listener()
    children: dict[str, Listener] = {}
    expected_parent: list[str] = []
    expected_children: dict[str, list[str]] = {}
    event = make_event(topic, job=job, context={"sheetId": sheet})
    for i, ((topics, filter), child_filter) in enumerate(specs):
        name = f"cb{i}"

        async def callback(e: FlatfileEvent) -> None:
            pass

        callback.__qualname__ = name
        if child_filter is None:
            listener.on(topics, filter, callback)
            if match_event(event, topics, filter):
                expected_parent.append(name)
        else:
            key = repr(sorted(child_filter.items(), key=repr))
            if key not in children:
                children[key] = listener.filter(child_filter)
                expected_children[key] = []
            children[key].on(topics, filter, callback)
            if match_event(event, topics, filter) and match_event(event, "**", child_filter):
                expected_children[key].append(name)
    expected = expected_parent + [n for names in expected_children.values() for n in names]
    assert [n.rsplit(".", 1)[-1] for n in listener.match(event)] == expected
