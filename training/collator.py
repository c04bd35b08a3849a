# SFT collator: chat template -> tokens (+ pixels or cached features) -> labels on the assistant answer only.
import torch

from training.feature_cache import FeatureCache
from training.sft_data import row_messages, row_videos

IGNORE_INDEX = -100


def answer_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_lengths: list[int],
                  end_token_id: int) -> torch.Tensor:
    """-100 everywhere except each sample's answer (the tokens after its prompt) up to and including the first
    `end_token_id` after it. Works for left or right padding: positions count within the unpadded tokens."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, prompt_len in enumerate(prompt_lengths):
        positions = attention_mask[i].nonzero().flatten()  # the real tokens, in order
        tokens = input_ids[i, positions]
        ends = (tokens[prompt_len:] == end_token_id).nonzero().flatten()
        if len(ends) == 0:
            raise ValueError(
                f"sample {i}: no end-of-turn token (id {end_token_id}) after the {prompt_len}-token prompt; the chat "
                "template must close the assistant turn with the tokenizer's eos token."
            )
        answer = positions[prompt_len : prompt_len + int(ends[0]) + 1]
        labels[i, answer] = input_ids[i, answer]
    return labels


class ProfVLMCollator:
    """Batches training rows for SFTTrainer. Renders each row's chat with the processor's template, tokenizes it
    (expanding `<video>`), adds `pixel_values_videos` (decoded and sampled by the processor) or, with a feature
    cache, `video_features` by take_uid; `labels` cover only the assistant answer and its end token.
    Each batch also carries `take_uids` (a list, popped by the trainer before the forward)."""

    def __init__(self, processor, labels, features: FeatureCache | None = None, frame_sampler: str | None = None):
        self.processor = processor
        self.labels = list(labels)  # the checkpoint's config.proficiency_labels
        self.features = features
        self.frame_sampler = frame_sampler
        tokenizer = processor.tokenizer
        self.end_token_id = tokenizer.eos_token_id
        if self.end_token_id is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos_token; it is needed to end the answer.")

    def render(self, row: dict) -> tuple[str, str]:
        """(full chat text, prompt text up to the assistant header) for one row."""
        messages = row_messages(row, self.labels)
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"take {row['take_uid']}: the training chat must end with the assistant answer.")
        full = self.processor.apply_chat_template(messages, tokenize=False)
        prompt = self.processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        if not full.startswith(prompt):
            raise ValueError(f"take {row['take_uid']}: the chat template's prompt is not a prefix of the full chat.")
        return full, prompt

    def _prompt_lengths(self, prompts: list[str], full_ids: torch.Tensor, mask: torch.Tensor, rows) -> list[int]:
        """Token count of each prompt; checks the prompt tokenizes the same alone and inside the full chat."""
        prompt_ids = self.processor(text=prompts, return_tensors=None, padding=False)["input_ids"]
        lengths = []
        for i, ids in enumerate(prompt_ids):
            real = full_ids[i, mask[i].bool()].tolist()
            if real[: len(ids)] != list(ids):
                raise ValueError(
                    f"take {rows[i]['take_uid']}: the prompt tokenizes differently alone and inside the full chat, "
                    "so the answer boundary is ambiguous; end the prompt with a special token or a newline."
                )
            lengths.append(len(ids))
        return lengths

    def __call__(self, rows: list[dict]) -> dict:
        rendered = [self.render(row) for row in rows]
        texts, prompts = [r[0] for r in rendered], [r[1] for r in rendered]
        if self.features is not None:
            uids = [row["take_uid"] for row in rows]
            batch = dict(self.processor(text=texts, return_tensors="pt", **self.features.prompt_kwargs(uids)))
            cached = [self.features.features_of(row["take_uid"], row["view_names"]) for row in rows]
            batch["video_features"] = torch.stack([f for f, _ in cached])  # [B, V, N, D]
            batch["view_mask"] = torch.stack([m for _, m in cached])  # [B, V]
        else:
            kwargs = {}
            if self.frame_sampler:
                # The seed comes from torch's RNG, which the Trainer seeds and restores on resume: same windows.
                kwargs = {"frame_sampler": self.frame_sampler, "seed": int(torch.randint(0, 2**31 - 1, (1,)))}
            videos = [row_videos(row) for row in rows]
            batch = dict(self.processor(text=texts, videos=videos, return_tensors="pt", **kwargs))
        lengths = self._prompt_lengths(prompts, batch["input_ids"], batch["attention_mask"], rows)
        batch["labels"] = answer_labels(batch["input_ids"], batch["attention_mask"], lengths, self.end_token_id)
        batch["take_uids"] = [row["take_uid"] for row in rows]
        return batch


__all__ = ["ProfVLMCollator", "answer_labels", "IGNORE_INDEX"]
