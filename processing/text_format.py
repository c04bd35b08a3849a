# The one place that knows ProfVLM's text format: the prompt, the answer ("Proficiency: ...\nFeedback: ..."),
# its inverse, the chat messages and the chat template.
import re

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIDEO_TOKEN

# The ProfVLM prototype's inference prompt (PAPER.md §2), with the video placeholder after it.
DEFAULT_INSTRUCTION = (
    "Analyze the following sports video. Provide the performer's proficiency level and expert feedback."
)
LABEL_PREFIX = "Proficiency: "
FEEDBACK_PREFIX = "Feedback: "

# ChatML like SmolLM2's. User content may be a string or a list of {"type": "text"|"video"} blocks (a video
# block renders as the video placeholder). `{% generation %}` marks the assistant answer (and its <|im_end|>,
# so the model learns to stop) for assistant-only loss in TRL.
# Unlike SmolLM2's own template, no system turn is inserted when a conversation has none: its default identity
# prompt ("You are a helpful AI assistant named SmolLM...") tells the model nothing about the task, yet it was
# 17 of the ~87 tokens of a short training sample, so every SFT step and every scored prompt paid ~20% for it.
# A system prompt passed in the messages (`build_messages(system_prompt=...)`) is still rendered.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
    "{%- else -%}{%- set content = namespace(text='') -%}"
    "{%- for block in message['content'] -%}"
    "{%- if block['type'] == 'video' -%}{%- set content.text = content.text + '" + VIDEO_TOKEN + "' -%}"
    "{%- elif block['type'] == 'text' -%}{%- set content.text = content.text + block['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set content = content.text -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- content + '<|im_end|>' -}}{% endgeneration %}{{- '\\n' -}}"
    "{%- else -%}{{- content + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_LABEL_LINE = re.compile(r"^[ \t]*proficiency[ \t]*:[ \t]*([^\n]*)$", re.IGNORECASE | re.MULTILINE)
_FEEDBACK_START = re.compile(r"^[ \t]*feedback[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)


def _check_label(label: str) -> str:
    if label not in PROFICIENCY_LABELS:
        raise ValueError(f"unknown proficiency label {label!r}; expected one of {list(PROFICIENCY_LABELS)}.")
    return label


def build_prompt(instruction: str = DEFAULT_INSTRUCTION, video_token: str = VIDEO_TOKEN) -> str:
    """The user turn: the instruction, then the video placeholder (one placeholder = one take's views)."""
    return f"{instruction}\n{video_token}"


def format_label_prefix(label: str) -> str:
    """"Proficiency: <label>": the continuation scored for each label to get label probabilities."""
    return LABEL_PREFIX + _check_label(label)


def label_continuations() -> list[str]:
    """`format_label_prefix` of every label, in the ordinal order of PROFICIENCY_LABELS."""
    return [format_label_prefix(label) for label in PROFICIENCY_LABELS]


def format_target(label: str, feedback: str | None = None) -> str:
    """The assistant answer: "Proficiency: <label>\\nFeedback: <feedback>" (label first, so it can be scored and
    read before the feedback is generated). Without feedback only the label line."""
    head = format_label_prefix(label)
    return head if feedback is None else f"{head}\n{FEEDBACK_PREFIX}{feedback}"


def _match_label(value: str) -> str | None:
    # Tolerate case, surrounding spaces/quotes/punctuation and doubled spaces in generated text.
    key = " ".join(value.strip().strip("\"'*.,;:!").split()).casefold()
    return next((label for label in PROFICIENCY_LABELS if label.casefold() == key), None)


def parse_output(text: str) -> tuple[str | None, str]:
    """Inverse of `format_target`: (label, feedback). Never raises. An exact `format_target` output round-trips;
    free text is read leniently (case, spaces, order); without a recognisable label it returns (None, text)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    for label in PROFICIENCY_LABELS:  # exact format: everything after the prefix is the feedback, verbatim
        head = format_label_prefix(label)
        if text == head:
            return label, ""
        if text.startswith(head + "\n" + FEEDBACK_PREFIX):
            return label, text[len(head) + 1 + len(FEEDBACK_PREFIX) :]
    line = _LABEL_LINE.search(text)
    label = _match_label(line.group(1)) if line else None
    if label is None:
        return None, text
    feedback = _FEEDBACK_START.search(text)
    if feedback is not None:
        return label, text[feedback.end() :].strip()
    return label, (text[: line.start()] + text[line.end() :]).strip()


def build_messages(
    label: str | None = None,
    feedback: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    system_prompt: str | None = None,
) -> list[dict]:
    """Chat messages for one take: [system?], user (instruction + video placeholder), [assistant target].
    Without a label there is no assistant turn (inference); pass `add_generation_prompt=True` to the template."""
    if label is None and feedback is not None:
        raise ValueError("build_messages got feedback without a label; the target is label first.")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    messages.append({"role": "user", "content": build_prompt(instruction)})
    if label is not None:
        messages.append({"role": "assistant", "content": format_target(label, feedback)})
    return messages


__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_INSTRUCTION",
    "LABEL_PREFIX",
    "FEEDBACK_PREFIX",
    "build_prompt",
    "build_messages",
    "format_label_prefix",
    "format_target",
    "label_continuations",
    "parse_output",
]
