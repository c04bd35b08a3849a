# ProfVLM's chat side: the instruction, the user prompt with its video placeholder, the chat messages and the
# chat template. The answer format itself ("Proficiency: ...\nFeedback: ...") lives in modeling_profvlm.profvlm_facts.
from collections.abc import Sequence

from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, VIDEO_TOKEN, format_target, format_timestamp

# The ProfVLM prototype's inference prompt (arXiv 2509.26278, prototype section), with the video placeholder after it.
DEFAULT_INSTRUCTION = (
    "Analyze the following sports video. Provide the performer's proficiency level and expert feedback."
)

# ChatML like SmolLM2's. User content may be a string or a list of {"type": "text"|"video"} blocks (a video
# block renders as the video placeholder). `{% generation %}` marks the assistant answer (and its <|im_end|>,
# so the model learns to stop) for assistant-only loss in TRL.
# Unlike SmolLM2's own template, no system turn is inserted when a conversation has none: its default identity
# prompt ("You are a helpful AI assistant named SmolLM...") tells the model nothing about the task, yet every SFT
# step and every scored prompt paid for its tokens (measured: benchmarks/results/avx2_sft_step_history.json).
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


def build_prompt(instruction: str = DEFAULT_INSTRUCTION, video_token: str = VIDEO_TOKEN) -> str:
    """The user turn: the instruction, then the video placeholder (one placeholder = one take's views)."""
    return f"{instruction}\n{video_token}"


def expand_video_placeholder(
    num_video_tokens: int,
    token_times: Sequence[float] | None = None,
    duration: float | None = None,
    video_token: str = VIDEO_TOKEN,
    time_decimals: int = 0,
) -> str:
    """What one take's `<video>` becomes in the model's input. Without times (one temporal token, the paper):
    `num_video_tokens` placeholders. With the times of N temporal tokens (seconds), the take's duration and each
    token's time in text before its placeholders, as LLaVA-Video does, e.g. for 2 tokens of a 24 s take:
    "(0:24) [0:01]<video> [0:13]<video>". Times are written by `format_timestamp`, the one time format, with the
    model's `time_decimals` digits ("[0:01.5]" for 1), as its answers write them."""
    placeholders = video_token * num_video_tokens
    if token_times is None:
        return placeholders
    head = f"({format_timestamp(duration, time_decimals)}) " if duration is not None else ""
    return head + " ".join(f"[{format_timestamp(t, time_decimals)}]{placeholders}" for t in token_times)


def build_messages(
    label: str | None = None,
    feedback: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    system_prompt: str | None = None,
    labels: Sequence[str] = PROFICIENCY_LABELS,
) -> list[dict]:
    """Chat messages for one take: [system?], user (instruction + video placeholder), [assistant target].
    Without a label there is no assistant turn (inference); pass `add_generation_prompt=True` to the template.
    `labels` are the checkpoint's labels (`config.proficiency_labels`); the label must be one of them."""
    if label is None and feedback is not None:
        raise ValueError("build_messages got feedback without a label; the target is label first.")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    messages.append({"role": "user", "content": build_prompt(instruction)})
    if label is not None:
        messages.append({"role": "assistant", "content": format_target(label, feedback, labels)})
    return messages


__all__ = ["CHAT_TEMPLATE", "DEFAULT_INSTRUCTION", "build_prompt", "build_messages", "expand_video_placeholder"]
