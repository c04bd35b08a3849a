"""[moments] The time format (`m:ss`, `h:mm:ss` from one hour on) and its inverse, owned by the shared-facts leaf."""
import math

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


@pytest.mark.parametrize("bad", ["", "4", "0:4", "0:60", "1:60:00", "a:bc", "1:2:3", "-0:04", "0:04.5", None, 4])
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
