"""The text format: target, its inverse, prompt, messages and the chat template (with generation markers)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling_profvlm import configuration_profvlm, profvlm_facts
from modeling_profvlm.profvlm_facts import (
    PROFICIENCY_LABELS,
    VIDEO_TOKEN,
    check_label_list,
    format_label_prefix,
    format_target,
    parse_feedback_continuation,
    parse_output,
)
from processing import text_format
from processing.text_format import CHAT_TEMPLATE, build_messages, build_prompt

FEEDBACKS = [
    "Smooth, controlled movement.",
    "Line one.\nLine two.\n\n  Indented line three.",
    "Très bien — équilibre stable. 很好 👍",
    "",
    "Proficiency: Novice\nFeedback: a feedback that quotes the format itself",
    "  leading and trailing spaces  \n",
]


@pytest.mark.parametrize("label", PROFICIENCY_LABELS)
@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_round_trip_every_label(label, feedback):
    assert parse_output(format_target(label, feedback)) == (label, feedback)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PROFICIENCY_LABELS), st.text())
def test_round_trip_any_feedback(label, feedback):
    assert parse_output(format_target(label, feedback)) == (label, feedback)


def test_target_puts_the_label_first():
    assert format_target("Late Expert", "Great.") == "Proficiency: Late Expert\nFeedback: Great."
    assert format_target("Novice") == "Proficiency: Novice"
    assert parse_output("Proficiency: Novice") == ("Novice", "")
    assert format_label_prefix("Early Expert") == "Proficiency: Early Expert"


@pytest.mark.parametrize("label", PROFICIENCY_LABELS)
@pytest.mark.parametrize("feedback", [f.strip() for f in FEEDBACKS])
def test_the_continuation_after_the_label_line_gives_the_feedback(label, feedback):
    head = format_label_prefix(label)
    assert parse_feedback_continuation(format_target(label, feedback)[len(head):]) == feedback


@pytest.mark.parametrize(("generated", "feedback"), [
    ("\nFeedback: Keep the elbow in.", "Keep the elbow in."),
    ("\n\n  feedback :Keep the elbow in.  \n", "Keep the elbow in."),  # case and spaces tolerated
    ("\nFEEDBACK:\tSteady.", "Steady."),
    ("\nFeedback:", ""),
    ("  Keep the elbow in. ", "Keep the elbow in."),  # off-format: as generated, stripped
    ("\nThe feedback: steady.", "The feedback: steady."),  # the prefix counts only at the start
    ("", ""),
    (None, ""),
])
def test_parse_feedback_continuation_is_lenient_and_never_raises(generated, feedback):
    assert parse_feedback_continuation(generated) == feedback


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_feedback_continuation_never_raises(text):
    assert isinstance(parse_feedback_continuation(text), str)


def test_labels_views_and_token_have_one_owner_the_leaf_module():
    assert text_format.PROFICIENCY_LABELS is profvlm_facts.PROFICIENCY_LABELS
    assert configuration_profvlm.PROFICIENCY_LABELS is profvlm_facts.PROFICIENCY_LABELS
    assert configuration_profvlm.VIEW_NAMES is profvlm_facts.VIEW_NAMES
    assert PROFICIENCY_LABELS == ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")


@pytest.mark.parametrize("labels", [("beginner", "intermediate", "advanced"), tuple(f"L{i}" for i in range(6))])
def test_the_answer_format_works_with_a_checkpoints_own_labels(labels):
    for label in labels:
        assert parse_output(format_target(label, "ok", labels), labels) == (label, "ok")
    with pytest.raises(ValueError, match="unknown proficiency label 'Novice'"):
        format_target("Novice", "x", labels)
    assert parse_output("Proficiency: Novice\nFeedback: x", labels) == (None, "Proficiency: Novice\nFeedback: x")


@pytest.mark.parametrize("bad", [["only"], ["a", "a"], ["a", ""], ["a", "b\nc"], ["a", " b"]])
def test_a_label_list_needs_two_distinct_single_line_labels(bad):
    with pytest.raises(ValueError, match="labels"):
        check_label_list(bad, "labels")


@pytest.mark.parametrize("bad", ["Expert", "novice", "", "Intermediate"])
def test_unknown_label_is_an_error_naming_it(bad):
    with pytest.raises(ValueError, match=f"unknown proficiency label {bad!r}"):
        format_target(bad, "x")


@pytest.mark.parametrize(
    "garbage",
    ["", "hello", "The performer is an expert.", "Proficiency: Grandmaster\nFeedback: nice", "Feedback: only feedback",
     "\x00\x01 binary-ish", "Proficiency:"],
)
def test_garbage_gives_no_label_and_the_text(garbage):
    assert parse_output(garbage) == (None, garbage)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_never_raises(text):
    label, feedback = parse_output(text)
    assert label is None or label in PROFICIENCY_LABELS
    assert isinstance(feedback, str)
    if "proficiency" not in text.casefold():
        assert (label, feedback) == (None, text)


def test_parse_is_lenient_with_generated_text():
    generated = "  proficiency:  early   expert.\nfeedback: Good balance. "
    assert parse_output(generated) == ("Early Expert", "Good balance.")
    assert parse_output("Analysis first.\nProficiency: Late Expert") == ("Late Expert", "Analysis first.")
    assert parse_output("PROFICIENCY: Novice\nFEEDBACK:\nwobbly") == ("Novice", "wobbly")
    assert parse_output(None) == (None, "")


def test_prompt_and_messages():
    prompt = build_prompt()
    assert prompt.count(VIDEO_TOKEN) == 1 and prompt.endswith(VIDEO_TOKEN)
    assert build_prompt("Rate this.", "<v>") == "Rate this.\n<v>"
    train = build_messages("Novice", "Shaky.")
    assert [m["role"] for m in train] == ["user", "assistant"]
    assert train[0]["content"] == prompt and train[1]["content"] == format_target("Novice", "Shaky.")
    assert [m["role"] for m in build_messages()] == ["user"]
    assert [m["role"] for m in build_messages("Novice", system_prompt="Be brief.")] == ["system", "user", "assistant"]
    with pytest.raises(ValueError, match="feedback without a label"):
        build_messages(feedback="x")


def render(tokenizer, messages, **kwargs):
    return tokenizer.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, tokenize=False, **kwargs)


def test_chat_template_is_chatml_without_an_inserted_system_prompt(tiny_tokenizer):
    text = render(tiny_tokenizer, build_messages("Novice", "Shaky."))
    assert text == (
        f"<|im_start|>user\n{build_prompt()}<|im_end|>\n"
        f"<|im_start|>assistant\n{format_target('Novice', 'Shaky.')}<|im_end|>\n"
    )
    prompt = render(tiny_tokenizer, build_messages(), add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and text.startswith(prompt)
    custom = render(tiny_tokenizer, build_messages(system_prompt="Be brief."))
    assert custom == f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{build_prompt()}<|im_end|>\n"


def test_chat_template_renders_video_blocks_like_the_placeholder(tiny_tokenizer):
    blocks = [{"role": "user", "content": [{"type": "text", "text": "Rate this.\n"}, {"type": "video"}]}]
    plain = [{"role": "user", "content": "Rate this.\n<video>"}]
    assert render(tiny_tokenizer, blocks) == render(tiny_tokenizer, plain)


def test_generation_markers_cover_exactly_the_answer(tiny_tokenizer):
    target = format_target("Intermediate Expert", "Keeps the rhythm.\nWatch the landing.")
    out = tiny_tokenizer.apply_chat_template(
        build_messages("Intermediate Expert", "Keeps the rhythm.\nWatch the landing."),
        chat_template=CHAT_TEMPLATE, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
    )
    ids = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tiny_tokenizer.decode(ids) == target + "<|im_end|>"
