"""[processor] The processor saved by `profvlm init` loads through AutoProcessor, installed or from the Hub."""
import json

from transformers import AutoProcessor

import processing  # noqa: F401  (registers ProfVLMProcessor with AutoProcessor)
from processing.processing_profvlm import ProfVLMProcessor


def test_init_writes_the_processor_and_auto_processor_loads_it(tiny_checkpoint):
    files = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"processor_config.json", "chat_template.jinja", "processing_profvlm.py"} <= files
    auto_map = json.loads((tiny_checkpoint / "processor_config.json").read_text())["auto_map"]
    assert auto_map["AutoProcessor"] == "processing_profvlm.ProfVLMProcessor"
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    assert type(processor) is ProfVLMProcessor
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    vision = config["vision_config"]  # the tower's config owns frames and size
    assert processor.num_frames == vision["num_frames"] and processor.image_size == vision["image_size"]
    assert "num_frames" not in config  # no second copy of the frame count
    assert processor.video_token_id == config["video_token_id"]


def test_processor_loads_with_trust_remote_code_from_hub_cache_without_the_project(tiny_checkpoint, hub_space,
                                                                                   tmp_path):
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 255, (6, 40, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    local = AutoProcessor.from_pretrained(tiny_checkpoint)
    expected = local(text=[local.build_prompt()], videos=[{"ego": frames, "exo2": frames}], return_tensors="pt")
    for key in ("input_ids", "pixel_values_videos", "view_mask"):
        np.save(tmp_path / f"{key}.npy", expected[key].numpy())
    hub_space.run_isolated(
        """
import numpy as np
from transformers import AutoProcessor
processor = AutoProcessor.from_pretrained("org/profvlm", trust_remote_code=True)
assert type(processor).__name__ == "ProfVLMProcessor", type(processor)
assert "transformers_modules" in type(processor).__module__, type(processor).__module__
frames = np.load("frames.npy")
out = processor(text=[processor.build_prompt()], videos=[{"ego": frames, "exo2": frames}], return_tensors="pt")
for key in ("input_ids", "pixel_values_videos", "view_mask"):
    np.testing.assert_allclose(out[key].numpy(), np.load(key + ".npy"), atol=1e-6)
print("OK")
""",
        tmp_path,
    )
