"""[hardening] One input classifier: every accepted form means the same take(s) to the pipeline and the processor."""
import numpy as np
import pytest
import torch
from PIL import Image

from modeling_profvlm.take_inputs import split_takes, take_views

VIEWS = ["ego", "exo1", "exo2", "exo3", "exo4"]
CLIP = np.zeros((4, 8, 8, 3), np.uint8)
FRAMES = [np.zeros((8, 8, 3), np.uint8)] * 4
PILS = [Image.new("RGB", (8, 8))] * 4
TENSOR = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)

# (input, expected number of takes, whether it is a batch, present views of the first take)
FORMS = {
    "dict": ({"ego": "a.mp4", "exo2": "b.mp4"}, 1, False, ["ego", "exo2"]),
    "one path": ("a.mp4", 1, False, ["ego"]),
    "list of paths = one take's views": (["a.mp4", "b.mp4"], 1, False, ["ego", "exo1"]),
    "list with a missing view": ([None, "b.mp4"], 1, False, ["exo1"]),
    "one 4-D clip": (CLIP, 1, False, ["ego"]),
    "one torch clip": (TENSOR, 1, False, ["ego"]),
    "list of numpy frames = one clip": (FRAMES, 1, False, ["ego"]),
    "list of PIL frames = one clip": (PILS, 1, False, ["ego"]),
    "list of 4-D clips = views": ([CLIP, CLIP], 1, False, ["ego", "exo1"]),
    "list of frame lists = views": ([FRAMES, PILS], 1, False, ["ego", "exo1"]),
    "list of dicts = batch": ([{"ego": "a.mp4"}, {"exo1": "b.mp4"}], 2, True, ["ego"]),
    "list of view lists = batch": ([["a.mp4"], ["b.mp4", "c.mp4"]], 2, True, ["ego"]),
    "list of one dict = batch of one": ([{"exo4": "a.mp4"}], 1, True, ["exo4"]),
}
AMBIGUOUS = {
    "dict beside a path": [{"ego": "a.mp4"}, "b.mp4"],
    "frame beside a clip": [np.zeros((8, 8, 3), np.uint8), CLIP],
    "one (H, W, 3) image, not a clip": np.zeros((8, 8, 3), np.uint8),
    "a number": 3,
    "empty list": [],
}


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
def test_each_accepted_form_has_one_meaning(form):
    value, count, batched, first_views = FORMS[form]
    takes, is_batch = split_takes(value)
    assert (len(takes), is_batch) == (count, batched)
    present = [v for v, src in zip(VIEWS, take_views(takes[0], VIEWS)) if src is not None]
    assert present == first_views


@pytest.mark.parametrize("form", AMBIGUOUS, ids=list(AMBIGUOUS))
def test_ambiguous_input_is_an_error_listing_the_accepted_forms(form):
    with pytest.raises(ValueError, match="a take is a dict"):
        split_takes(AMBIGUOUS[form])


def _decoded_forms():
    """The accepted forms built from decoded frames, so the processor and the pipeline can run them for real."""
    clip = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    frames = list(clip)
    return {
        "one clip": (clip, 1, ["ego"]),
        "frame list": (frames, 1, ["ego"]),
        "views as clips": ([clip, None, clip], 1, ["ego", "exo2"]),
        "dict": ({"exo1": clip}, 1, ["exo1"]),
        "batch of dicts": ([{"ego": clip}, {"exo3": frames}], 2, ["ego"]),
        "batch of lists": ([[clip], [None, clip]], 2, ["ego"]),
    }


@pytest.mark.parametrize("name", list(_decoded_forms()))
def test_the_processor_and_the_pipeline_read_each_form_the_same_way(name, tiny_checkpoint):
    from transformers import pipeline

    import modeling_profvlm  # noqa: F401
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline
    from processing.processing_profvlm import ProfVLMProcessor

    value, count, first_views = _decoded_forms()[name]
    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    mask = processor(videos=value)["view_mask"]
    assert mask.shape[0] == count
    assert [v for v, m in zip(processor.view_names, mask[0].tolist()) if m] == first_views
    pipe = pipeline("proficiency-estimation", model=str(tiny_checkpoint), pipeline_class=ProficiencyEstimationPipeline)
    result = pipe(value, return_feedback=False)
    results = result if isinstance(result, list) else [result]
    assert isinstance(result, list) == (count > 1 or name.startswith("batch"))
    assert len(results) == count
    assert sorted(results[0]["view_weights"]) == sorted(first_views)
