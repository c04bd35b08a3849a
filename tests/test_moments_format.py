"""[moments] The time format (`m:ss`, `h:mm:ss` from one hour on) and its inverse, owned by the shared-facts leaf."""
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling_profvlm.profvlm_facts import format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0:00"),
        (4, "0:04"),
        (4.99, "0:04"),  # floored, never rounded up
        (59.999, "0:59"),
        (60, "1:00"),
        (750.5, "12:30"),
        (3599.9, "59:59"),
        (3600, "1:00:00"),
        (3723, "1:02:03"),
        (36000 + 59 * 60 + 59, "10:59:59"),
        (np.float32(27.6), "0:27"),
        (np.int64(61), "1:01"),
    ],
)
def test_format_timestamp_by_hand(seconds, text):
    assert format_timestamp(seconds) == text


@pytest.mark.parametrize("bad", [-0.5, -1, math.nan, math.inf, "4", None, True])
def test_format_timestamp_rejects_what_is_not_a_time(bad):
    with pytest.raises(ValueError, match="timestamp"):
        format_timestamp(bad)


@pytest.mark.parametrize(
    "text, seconds",
    [("0:00", 0.0), ("0:04", 4.0), (" 12:30 ", 750.0), ("1:00:00", 3600.0), ("1:02:03", 3723.0), ("75:00", 4500.0)],
)
def test_parse_timestamp_by_hand(text, seconds):
    assert parse_timestamp(text) == seconds


@pytest.mark.parametrize("bad", ["", "4", "0:4", "0:60", "1:60:00", "a:bc", "1:2:3", "-0:04", "0:04.", "0:04.x",
                                 "0:04,5", "0:.5", "0:04.-5", None, 4])
def test_parse_timestamp_names_what_it_could_not_read(bad):
    with pytest.raises(ValueError, match="not m:ss or h:mm:ss"):
        parse_timestamp(bad)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=100 * 3600, allow_nan=False, allow_infinity=False))
def test_parse_inverts_format_up_to_the_floor(seconds):
    text = format_timestamp(seconds)
    assert parse_timestamp(text) == math.floor(seconds)
    assert format_timestamp(parse_timestamp(text)) == text
    # past an hour the text has three fields, before it two
    assert text.count(":") == (2 if seconds >= 3600 else 1)


# ---- the answer format with moments: "Proficiency: <label>\nFeedback: [m:ss] text [m:ss] text ..."

from modeling_profvlm.profvlm_facts import (  # noqa: E402
    PROFICIENCY_LABELS,
    format_moments,
    format_target,
    moment_marker_spans,
    normalize_moments,
    parse_moments,
    parse_output,
)


def test_moments_render_in_time_order_with_floored_times():
    moments = [
        {"time": 3725.9, "text": "late  catch,\n good recovery"},
        {"time": 4.7, "text": "elbow flares"},
        {"time": 27.2, "text": "clean release"},
    ]
    feedback = format_moments(moments)
    assert feedback == "[0:04] elbow flares [0:27] clean release [1:02:05] late catch, good recovery"
    answer = format_target("Late Expert", feedback)
    assert answer == (
        "Proficiency: Late Expert\nFeedback: [0:04] elbow flares [0:27] clean release [1:02:05] late catch, good recovery"
    )
    label, parsed_feedback = parse_output(answer)
    assert label == "Late Expert"
    assert parse_moments(parsed_feedback) == [
        {"time": 4.0, "text": "elbow flares"},
        {"time": 27.0, "text": "clean release"},
        {"time": 3725.0, "text": "late catch, good recovery"},
    ]


def test_a_model_without_moments_answers_as_before():
    assert format_target("Novice", "Keep the knees soft.") == "Proficiency: Novice\nFeedback: Keep the knees soft."
    assert parse_output("Proficiency: Novice\nFeedback: Keep the knees soft.") == ("Novice", "Keep the knees soft.")
    assert parse_moments("Keep the knees soft.") == []
    assert format_moments([]) == ""


def test_a_bracketed_time_inside_a_comment_is_not_read_as_a_second_moment():
    feedback = format_moments([{"time": 10, "text": "same slip as [0:04] again"}])
    assert feedback == "[0:10] same slip as (0:04) again"
    assert parse_moments(feedback) == [{"time": 10.0, "text": "same slip as (0:04) again"}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        (None, []),
        ("no times here", []),
        ("Intro words. [0:04] slip", [{"time": 4.0, "text": "slip"}]),  # text before the first marker is not a moment
        ("[0:04] [0:08] late", [{"time": 8.0, "text": "late"}]),  # a marker without text is skipped
        ("[ 1:05 ]good\n[0:03]  bad", [{"time": 3.0, "text": "bad"}, {"time": 65.0, "text": "good"}]),
        ("[0:75] not a time [0:02] ok", [{"time": 2.0, "text": "ok"}]),
        ("[0:05] a [0:05] b", [{"time": 5.0, "text": "a"}, {"time": 5.0, "text": "b"}]),
        ("[2:00:00] two hours", [{"time": 7200.0, "text": "two hours"}]),
    ],
)
def test_parse_moments_is_lenient_with_generated_text(text, expected):
    assert parse_moments(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("no times here", []),
        ("[0:04] slip [1:02:03] late", [(0, 6), (12, 21)]),
        ("x [ 0:05 ] y [0:75] z", [(2, 10)]),  # spaces inside tolerated; 75 seconds is not a time
    ],
)
def test_moment_marker_spans_are_where_the_times_are_written(text, expected):
    assert moment_marker_spans(text) == expected


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"time": -1, "text": "x"}], "moment 0: time -1"),
        ([{"time": "0:04", "text": "x"}], "moment 0: time '0:04'"),
        ([{"time": 1, "text": "x"}, {"time": math.nan, "text": "x"}], "moment 1: time nan"),
        ([{"time": 1, "text": "  \n"}], "moment 0: text"),
        ([{"time": 1}], "moment 0 must be a dict"),
    ],
)
def test_bad_moments_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        format_moments(bad)


def _has_text(text):
    return bool(" ".join(text.split()))


moment_lists = st.lists(
    st.fixed_dictionaries(
        {
            "time": st.floats(min_value=0, max_value=30 * 3600, allow_nan=False, allow_infinity=False),
            "text": st.text().filter(_has_text),
        }
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PROFICIENCY_LABELS), moment_lists)
def test_render_then_parse_gives_the_same_moments(label, moments):
    label_back, feedback = parse_output(format_target(label, format_moments(moments)))
    assert label_back == label
    back = parse_moments(feedback)
    # what the answer keeps, computed here without the code under test: floored times, stable time order,
    # whitespace collapsed to single spaces
    order = sorted(range(len(moments)), key=lambda i: moments[i]["time"])
    assert [m["time"] for m in back] == [float(math.floor(moments[i]["time"])) for i in order]
    for i, m in zip(order, back):
        expected = " ".join(moments[i]["text"].split())
        if "[" not in expected:  # bracketed times are turned into parentheses, tested above
            assert m["text"] == expected
    assert back == normalize_moments(moments)
    assert format_moments(back) == format_moments(moments)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"time": st.integers(min_value=3600, max_value=99 * 3600), "text": st.sampled_from(["a", "b c", "déjà vu"])}
        ),
        min_size=1,
        max_size=5,
    )
)
def test_round_trip_past_an_hour(moments):
    feedback = format_moments(moments)
    assert all(len(marker.split(":")) == 3 for marker in re.findall(r"\[([^\]]+)\]", feedback))
    assert parse_moments(feedback) == sorted(
        ({"time": float(m["time"]), "text": m["text"]} for m in moments), key=lambda m: m["time"]
    )
