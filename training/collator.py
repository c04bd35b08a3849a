# SFT collator: chat template -> tokens (+ pixels or cached features) -> labels on the assistant answer only.
import torch
from transformers.utils.chat_template_utils import render_jinja_template

from modeling_profvlm.profvlm_facts import LABEL_PREFIX, moment_marker_spans
from training.feature_cache import FeatureCache
from training.sft_data import row_messages, row_videos

IGNORE_INDEX = -100


def answer_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, offsets: torch.Tensor,
                  answer_spans: list[tuple[int, int]]) -> torch.Tensor:
    """-100 everywhere except the tokens of each sample's answer. `offsets` (B, L, 2) are the tokens' character
    spans in the text the processor tokenized; `answer_spans` the answer's (start, end) counted in characters back
    from that text's end. Counting from the end is what makes the chat template's marks usable here: the processor
    expands `<video>` (in the user turn, before the answer) after the template was rendered, which moves every
    character before the answer but none after it. Works for left or right padding."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, (from_end_start, from_end_stop) in enumerate(answer_spans):
        real = attention_mask[i].bool()
        starts, ends = offsets[i, :, 0], offsets[i, :, 1]
        text_end = int(ends[real].max())
        answer = real & (starts >= text_end - from_end_start) & (ends <= text_end - from_end_stop) & (ends > starts)
        if not answer.any():
            raise ValueError(f"sample {i}: no token lies inside the answer the chat template marks with "
                             "{% generation %}; the answer must be a whole number of tokens.")
        labels[i, answer] = input_ids[i, answer]
    return labels


def span_token_mask(attention_mask: torch.Tensor, offsets: torch.Tensor,
                    spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """(B, L) bool: the tokens that overlap any of each sample's character spans, each (start, end) counted in
    characters back from the text's end as in `answer_labels`. Overlap, not containment: a BPE token often carries
    the space before a word (" Early")."""
    mask = torch.zeros_like(attention_mask, dtype=torch.bool)
    for i, sample_spans in enumerate(spans):
        real = attention_mask[i].bool()
        starts, ends = offsets[i, :, 0], offsets[i, :, 1]
        text_end = int(ends[real].max())
        for from_end_start, from_end_stop in sample_spans:
            mask[i] |= real & (ends > text_end - from_end_start) & (starts < text_end - from_end_stop) & (ends > starts)
    return mask


def end_token_mask(labels: torch.Tensor, has_moments: list[bool]) -> torch.Tensor:
    """(B, L) bool: each answer's last labelled token (the chat template's end of turn), for the answers that have
    moments. After an answer's last moment the model chooses between another marker's first token and this one; with
    the markers weighted up and the end not, training pushes it to write moments past the last."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for i, moments in enumerate(has_moments):
        answer = (labels[i] != IGNORE_INDEX).nonzero()
        if moments and len(answer):
            mask[i, int(answer[-1])] = True
    return mask


class ProfVLMCollator:
    """Batches training rows for SFTTrainer. Renders each row's chat with the processor's template, tokenizes it
    (expanding `<video>`), adds `pixel_values_videos` (decoded and sampled by the processor) or, with a feature
    cache, `video_features` by take_uid; `labels` cover only the assistant answer and its end token, the span the
    chat template marks with `{% generation %}` (no second tokenization of the prompts).
    Each batch also carries `take_uids` (a list, popped by the trainer before the forward); with
    `mark_label_tokens`, `label_token_mask` (B, L), the tokens of the proficiency label, and with `mark_time_tokens`,
    `time_token_mask` (B, L), the tokens of the answer's `[m:ss]` moment markers, and with `mark_end_tokens`,
    `end_token_mask` (B, L), the answer's last token (its end) where the answer has moments: the trainer may weight
    them up (`--label_loss_weight`, `--time_loss_weight`, `--end_loss_weight`)."""

    def __init__(self, processor, labels, features: FeatureCache | None = None, frame_sampler: str | None = None,
                 mark_label_tokens: bool = False, mark_time_tokens: bool = False, mark_end_tokens: bool = False):
        self.processor = processor
        self.labels = list(labels)  # the checkpoint's config.proficiency_labels
        self.features = features
        self.frame_sampler = frame_sampler
        self.mark_label_tokens = mark_label_tokens
        self.mark_time_tokens = mark_time_tokens
        self.mark_end_tokens = mark_end_tokens

    def render(self, row: dict) -> tuple[str, tuple[int, int]]:
        """(chat text, the answer's (start, end) in characters back from the text's end) for one row: the answer is
        what the processor's chat template marks with `{% generation %}` (the assistant turn and its end token)."""
        messages = row_messages(row, self.labels)
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"take {row['take_uid']}: the training chat must end with the assistant answer.")
        (text,), (marked,) = render_jinja_template([messages], chat_template=self.processor.chat_template,
                                                   return_assistant_tokens_mask=True)
        if len(marked) != 1:
            raise ValueError(f"take {row['take_uid']}: the chat template marks {len(marked)} spans with "
                             "{% generation %}; expected exactly one, the assistant answer.")
        start, end = marked[0]
        return text, (len(text) - start, len(text) - end)

    def __call__(self, rows: list[dict]) -> dict:
        rendered = [self.render(row) for row in rows]
        texts, spans = [r[0] for r in rendered], [r[1] for r in rendered]
        if self.features is not None:
            uids = [row["take_uid"] for row in rows]
            batch = dict(self.processor(text=texts, return_tensors="pt", return_offsets_mapping=True,
                                        **self.features.prompt_kwargs(uids)))
            features, view_mask, time_mask = self.features.stack(uids, [row["view_names"] for row in rows])
            batch["video_features"], batch["view_mask"] = features, view_mask  # [B, V, N or K x N, D], [B, V]
            if time_mask is not None:  # clips over the take: each take's own clips, the rest padding
                batch["time_mask"] = time_mask
        else:
            kwargs = {}
            if self.frame_sampler:
                # The seed comes from torch's RNG, which the Trainer seeds and restores on resume: same windows.
                kwargs = {"frame_sampler": self.frame_sampler, "seed": int(torch.randint(0, 2**31 - 1, (1,)))}
            videos = [row_videos(row) for row in rows]
            batch = dict(self.processor(text=texts, videos=videos, return_tensors="pt", return_offsets_mapping=True,
                                        **kwargs))
        offsets = batch.pop("offset_mapping")  # the model takes no offsets
        batch["labels"] = answer_labels(batch["input_ids"], batch["attention_mask"], offsets, spans)
        if self.mark_label_tokens:  # the answer opens with LABEL_PREFIX + the label (format_target)
            label_spans = [[(start - len(LABEL_PREFIX), start - len(LABEL_PREFIX) - len(row["label"]))]
                           for (start, _), row in zip(spans, rows)]
            batch["label_token_mask"] = span_token_mask(batch["attention_mask"], offsets, label_spans)
        if self.mark_time_tokens or self.mark_end_tokens:  # each answer's markers, found once
            markers = [moment_marker_spans(text[len(text) - start:]) for text, (start, _) in zip(texts, spans)]
        if self.mark_time_tokens:  # moved to the from-the-end count
            time_spans = [[(start - a, start - b) for a, b in found] for found, (start, _) in zip(markers, spans)]
            batch["time_token_mask"] = span_token_mask(batch["attention_mask"], offsets, time_spans)
        if self.mark_end_tokens:
            batch["end_token_mask"] = end_token_mask(batch["labels"], [bool(found) for found in markers])
        batch["take_uids"] = [row["take_uid"] for row in rows]
        return batch


__all__ = ["ProfVLMCollator", "answer_labels", "end_token_mask", "span_token_mask", "IGNORE_INDEX"]
