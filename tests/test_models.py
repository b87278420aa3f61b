"""The wire models: leniency, camelCase, omission of unset fields, and round trips."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flatjobs import Job, JobCompleteDetails, JobOutcome, JobStatus, Next
from flatjobs.models import (
    AnyNext,
    Context,
    Event,
    JobAckDetails,
    JobEventPayload,
    JobPartsCounts,
    OutcomeTrigger,
    RetryNext,
    Secret,
    UnknownNext,
    from_wire,
    to_wire,
)

from .conftest import load_event

ALL_EVENTS = [
    "job-ready-sheet-action",
    "job-ready-workbook-action",
    "job-ready-part",
    "job-parts-completed-counts",
    "job-parts-completed-list",
    "job-outcome-acknowledged",
    "records-created",
    "unknown-topic-canvas",
]


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_every_sample_event_round_trips_unchanged(name: str) -> None:
    raw = load_event(name)
    assert to_wire(from_wire(raw, Event)) == raw


def test_a_topic_flatfiles_python_sdk_does_not_know_parses_and_keeps_extra_fields() -> None:
    raw = load_event("unknown-topic-canvas")
    event = from_wire(raw, Event)
    assert event.topic == "canvas:created"
    assert event.extra == {"futureTopLevelField": {"nested": [1, 2, 3]}}
    assert event.context.extra == {"canvasId": "us_cv_1", "entityId": "us_ent_9"}
    assert to_wire(event)["futureTopLevelField"] == {"nested": [1, 2, 3]}


def test_context_reads_camel_case_into_snake_case() -> None:
    event = from_wire(load_event("job-ready-sheet-action"), Event)
    assert event.context.job_id == "us_jb_v4w5x6"
    assert event.context.sheet_slug == "contacts"
    assert event.created_at == dt.datetime(2026, 11, 20, 14, 3, 11, 512000, tzinfo=dt.UTC)


def test_unknown_enum_values_are_kept_as_text_and_known_ones_become_members() -> None:
    job = from_wire({"id": "j", "status": "quantum", "mode": "foreground"}, Job)
    assert job.status == "quantum"
    assert not isinstance(job.status, JobStatus)
    assert from_wire({"id": "j", "status": "canceled"}, Job).status is JobStatus.CANCELED
    assert to_wire(job) == {"id": "j", "status": "quantum", "mode": "foreground"}


def test_unset_optional_fields_are_omitted_never_null() -> None:
    assert to_wire(JobAckDetails(progress=30)) == {"progress": 30}
    assert to_wire(JobCompleteDetails()) == {}
    assert "info" not in to_wire(JobAckDetails(progress=30, info=None))


def test_null_on_the_wire_reads_as_absent() -> None:
    payload = from_wire({"job": "a:b", "info": None}, JobEventPayload)
    assert payload.info is None
    assert to_wire(payload) == {"job": "a:b"}


def test_next_builders_produce_the_tagged_wire_shape() -> None:
    assert to_wire(Next.retry("Try again")) == {"type": "retry", "label": "Try again"}
    assert to_wire(Next.download("https://x/e.csv", file_name="e.csv")) == {
        "type": "download",
        "url": "https://x/e.csv",
        "fileName": "e.csv",
    }
    assert to_wire(Next.files(["us_fl_1"])) == {"type": "files", "files": [{"fileId": "us_fl_1"}]}
    assert to_wire(Next.view("us_sh_1", ["a"])) == {
        "type": "view",
        "sheetId": "us_sh_1",
        "hiddenColumns": ["a"],
    }
    assert to_wire(Next.clear_filters(sheet_ids=["s"])) == {
        "type": "clearFilters",
        "sheetIds": ["s"],
    }
    assert to_wire(Next.snapshot("snap", "sh"))["snapshotId"] == "snap"
    assert to_wire(Next.id("us_sp_1", path="/x"))["type"] == "id"
    assert to_wire(Next.url("https://x"))["type"] == "url"
    assert to_wire(Next.wait(confetti=True)) == {"type": "wait", "confetti": True}


def test_next_of_an_unknown_type_is_kept_whole() -> None:
    outcome = from_wire({"next": {"type": "teleport", "to": "mars"}}, JobOutcome)
    assert outcome.next == UnknownNext(type="teleport", extra={"to": "mars"})
    assert to_wire(outcome) == {"next": {"type": "teleport", "to": "mars"}}


def test_outcome_trigger_is_either_a_word_or_an_object() -> None:
    assert from_wire({"trigger": "automatic"}, JobOutcome).trigger == "automatic"
    obj = from_wire({"trigger": {"type": "manual", "audience": "all"}}, JobOutcome).trigger
    assert obj == OutcomeTrigger(type="manual", audience="all")


def test_both_shapes_of_parts_read_as_counts() -> None:
    counts = from_wire(load_event("job-parts-completed-counts"), Event).job_payload
    listed = from_wire(load_event("job-parts-completed-list"), Event).job_payload
    assert counts.parts_counts() == JobPartsCounts(total=10, completed=9, failed=1, canceled=0)
    assert listed.parts_counts() == JobPartsCounts(total=2, completed=2, failed=0, canceled=0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"topic": "x"}, "Event is missing required field(s): id"),
        ({"id": "e", "topic": "x", "createdAt": "yesterday"}, "Event.createdAt"),
        ({"id": "e", "topic": {"a": 1}}, "Event.topic: expected a string"),
        ([1, 2], "Event must be a JSON object, got list"),
        ({"id": "e", "topic": "t", "context": "nope"}, "Context must be a JSON object"),
    ],
)
def test_malformed_input_raises_value_error_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_wire(raw, Event)


def test_secret_value_is_not_in_repr() -> None:
    assert "hunter2" not in repr(Secret(name="db", value="hunter2"))


# --------------------------------------------------------------- property tests

_text = st.text(max_size=12)
_opt_text = st.none() | _text
_when = st.none() | st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
_json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
# Extra keys never collide with a modelled field: those would be read as the field.
_extra = st.dictionaries(st.text(min_size=1, max_size=6).map(lambda k: "x-" + k), _json, max_size=3)
_status = st.sampled_from([*JobStatus, "brand-new-status"])
_next: st.SearchStrategy[AnyNext] = st.one_of(
    st.builds(RetryNext, label=_opt_text, extra=_extra),
    st.builds(Next.download, _text, label=_opt_text, file_name=_opt_text),
    st.builds(Next.view, _text, st.lists(_text, max_size=3), label=_opt_text),
    st.builds(UnknownNext, type=st.just("future-kind"), extra=_extra),
)
_outcome = st.builds(
    JobOutcome,
    acknowledge=st.none() | st.booleans(),
    trigger=st.none() | st.sampled_from(["manual", "automatic", "later"]),
    button_text=_opt_text,
    heading=_opt_text,
    message=_opt_text,
    next=st.none() | _next,
    extra=_extra,
)
_job = st.builds(
    Job,
    id=_text,
    type=st.none() | st.sampled_from(["workbook", "sheet", "galaxy"]),
    operation=_opt_text,
    status=st.none() | _status,
    progress=st.none() | st.integers(0, 100) | st.floats(0, 100, allow_nan=False),
    outcome=st.none() | _outcome,
    info=_opt_text,
    part_data=_json,
    created_at=_when,
    estimated_completion_at=_when,
    extra=_extra,
)
_event = st.builds(
    Event,
    id=_text,
    topic=_text,
    domain=st.none() | st.sampled_from(["job", "sheet", "hologram"]),
    context=st.builds(Context, job_id=_opt_text, sheet_id=_opt_text, extra=_extra),
    payload=st.dictionaries(_text, _json, max_size=4),
    created_at=_when,
    namespaces=st.none() | st.lists(_text, max_size=3),
    extra=_extra,
)


@given(_job)
def test_property_job_round_trips(job: Job) -> None:
    assert from_wire(to_wire(job), Job) == job


@given(_event)
def test_property_event_round_trips(event: Event) -> None:
    assert from_wire(to_wire(event), Event) == event


@given(_outcome)
def test_property_outcome_wire_form_has_no_nulls_at_model_level(outcome: JobOutcome) -> None:
    wire = to_wire(outcome)
    modelled = {k: v for k, v in wire.items() if not k.startswith("x-")}
    assert None not in modelled.values()
    assert from_wire(wire, JobOutcome) == outcome
