"""A tiny checkpoint whose language model was trained (briefly, here) to answer with timed moments, for the tests of
what the pipeline, `profvlm predict` and the app do with them. Whatever the video, it answers every label with
`MOMENTS_FEEDBACK` after the label `MOMENTS_LABEL`, which it scores far above the others (so that the level does not
depend on the dtype); the last moment lies past the end of any test take, so it must be dropped."""
from pathlib import Path

import torch

# Two moments inside a take of >= 2 s and one at 9:59, past every test take's end.
MOMENTS_LABEL = "Intermediate Expert"
MOMENTS_FEEDBACK = "[0:00] clean rep [0:02] slip [9:59] late"
EXPECTED_MOMENTS = [{"time": 0.0, "text": "clean rep"}, {"time": 2.0, "text": "slip"}]  # written out by hand
TRAIN_STEPS, LEARNING_RATE = 100, 1e-2


def build_moments_checkpoint(text_dir: Path, out: Path, temporal_tokens: int = 1, num_frames: int | None = None) -> Path:
    """`profvlm init`'s tiny checkpoint (random-tiny tower, the tiny LM at `text_dir`) whose LM and projector were
    trained to answer "Proficiency: " + MOMENTS_LABEL + "\\nFeedback: " + MOMENTS_FEEDBACK for random video features;
    saved in place at `out`."""
    from transformers import AutoProcessor

    import processing  # noqa: F401  (registers the processor)
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
    from processing.text_format import build_messages
    from profvlm.assemble import build_base_checkpoint

    build_base_checkpoint("random-tiny", str(text_dir), out, temporal_tokens=temporal_tokens, num_frames=num_frames)
    model = ProfVLMForConditionalGeneration.from_pretrained(out).train()
    processor = AutoProcessor.from_pretrained(out)
    config = model.config
    labels = list(config.proficiency_labels)
    prompt = processor.build_prompt()
    texts = [processor.apply_chat_template(build_messages(MOMENTS_LABEL, MOMENTS_FEEDBACK, labels=labels))] * 2
    token_times = [{"times": [float(i) for i in range(temporal_tokens)], "duration": float(temporal_tokens)}] * len(texts)
    kwargs = {"token_times": token_times} if temporal_tokens > 1 else {}
    batch = processor(text=texts, padding=True, return_tensors="pt", **kwargs)
    prompt_len = processor(text=[prompt], return_tensors="pt", **({"token_times": token_times[:1]} if kwargs else {}))[
        "input_ids"].shape[1]
    targets = batch["input_ids"].clone()
    targets[:, :prompt_len] = -100  # learn the answer only
    targets[batch["attention_mask"] == 0] = -100
    trainable = [p for name, p in model.named_parameters() if not name.startswith("model.vision_tower")]
    optimizer = torch.optim.Adam(trainable, lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)
    shape = (len(texts), config.num_views, config.temporal_tokens, config.vision_config.hidden_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second OpenMP thread only adds waiting (4x slower on 2 busy cores)
    for _ in range(TRAIN_STEPS):
        features = torch.randn(shape, generator=generator)  # any video: the answer must not depend on it
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], video_features=features,
                     view_mask=torch.ones(shape[:2], dtype=torch.long), labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    model.eval().save_pretrained(out)
    return out
