"""[long-takes] Clips over the whole take: with `clip_seconds = S` each view is K = ceil(duration / S) clips laid end
to end, each from its own window; the prompt states every token's time; takes of different lengths batch together
with their padded clips inert; `clip_seconds` unset keeps today's outputs."""
import json
import re
import shutil
import threading

import numpy as np
import pytest
import torch

from modeling_profvlm.answering import answer_takes
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, floor_time, parse_moments
from processing.frame_sampling import clip_windows, clips_capped
from tests.tiny_assets import tiny_inputs, tiny_profvlm
from tests.video_fixtures import TIME_CODE_BITS, pattern_frames, write_pattern_video, write_timed_video

VIEWS = ["ego", "exo1"]
TAKE_SECONDS, FPS, CLIP_SECONDS = 120, 5, 4.0  # 30 clips


def _model_and_processor(tokenizer, temporal_tokens: int = 1, num_video_tokens: int = 1, **config):
    from processing.processing_profvlm import ProfVLMProcessor

    model = tiny_profvlm(clip_seconds=CLIP_SECONDS, temporal_tokens=temporal_tokens, num_video_tokens=num_video_tokens,
                         num_views=len(VIEWS), view_names=VIEWS, **config)
    return model, ProfVLMProcessor.from_model_config(model.config, tokenizer)


@pytest.fixture(scope="module")
def timed_take(tmp_path_factory) -> dict[str, str]:
    """A 120 s take of two views at 5 fps whose every frame spells its own time (`time_code_frame`)."""
    folder = tmp_path_factory.mktemp("long_take")
    times = [i / FPS for i in range(TAKE_SECONDS * FPS)]
    return {view: str(write_timed_video(folder / f"{view}.mp4", times)) for view in VIEWS}


def _times_in_pixels(pixels: torch.Tensor, processor) -> list[float]:
    """The time each (3, S, S) frame of `pixels` spells, read back from the normalised pixels: a 64 px time code
    resized to S px keeps its 4 x 4 blocks, read at their centres."""
    mean = torch.tensor(processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_std).view(3, 1, 1)
    side, block = int(TIME_CODE_BITS**0.5), processor.image_size // int(TIME_CODE_BITS**0.5)
    times = []
    for frame in pixels.reshape(-1, *pixels.shape[-3:]):
        gray = ((frame * std + mean) * 255).mean(0).numpy()
        centres = gray[block // 2 :: block, block // 2 :: block][:side, :side].reshape(-1)
        times.append(sum(1 << k for k, value in enumerate(centres) if value > 127) / 100)
    return times


def test_clip_windows_lie_end_to_end_and_a_long_take_gets_max_clips_equal_ones():
    windows = clip_windows(120.0, 4.0, 64)
    assert len(windows) == 30 and windows[0] == (0.0, 4.0) and windows[-1] == (116.0, 120.0)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))
    assert clip_windows(10.0, 4.0, 64) == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]  # the last one ends with the take
    assert clip_windows(3.0, 4.0, 64) == [(0.0, 3.0)]
    assert clip_windows(120.0, 4.0, 8) == [(15.0 * k, 15.0 * (k + 1)) for k in range(8)]
    assert clips_capped(120.0, 4.0, 8) and not clips_capped(120.0, 4.0, 30) and clips_capped(120.1, 4.0, 30)


@pytest.mark.parametrize("temporal_tokens", [1, 2])
def test_a_120_s_take_is_30_clips_per_view_each_from_its_own_window(timed_take, tiny_tokenizer, temporal_tokens):
    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens, num_video_tokens=2)
    out = processor(text=processor.build_prompt(), videos=[timed_take], return_metadata=True)
    frames = model.config.num_frames
    assert out["pixel_values_videos"].shape == (1, 2, 30, frames, 3, 32, 32)
    assert out["time_mask"].tolist() == [[1] * 30]
    for v in range(len(VIEWS)):
        meta = out["video_metadata"][0][v]
        assert meta["clips"] == 30 and meta["clip_seconds"] == CLIP_SECONDS and not meta["clips_capped"]
        seen = _times_in_pixels(out["pixel_values_videos"][0, v], processor)
        assert seen == pytest.approx(meta["times"], abs=1e-6)  # each token's time is its frames' real time
        for k in range(30):  # the clip's frames lie in its own window, spread over it, in time order
            clip = seen[k * frames : (k + 1) * frames]
            assert all(4 * k <= t < 4 * (k + 1) for t in clip), (k, clip)
            assert clip == sorted(clip) and clip[-1] - clip[0] >= 2.0, (k, clip)
    # the prompt: one [m:ss] per token, increasing, each the time of its clip's frames
    text = processor.tokenizer.decode(out["input_ids"][0])
    marks = [int(m) * 60 + int(s) for m, s in re.findall(r"\[(\d+):(\d\d)\]<video>", text)]
    assert len(marks) == 30 * temporal_tokens and marks == sorted(set(marks))
    assert marks[::temporal_tokens] == [int(t) for t in out["video_metadata"][0][0]["times"][::frames]]
    assert text.count("<video>") == 30 * temporal_tokens * 2
    video = model.get_video_features(out["pixel_values_videos"], out["view_mask"], time_mask=out["time_mask"])
    assert [tuple(t.shape) for t in video.pooler_output] == [(30 * temporal_tokens * 2, 32)]
    assert video.last_hidden_state.shape == (1, 2, 30 * temporal_tokens, 64)
    logits = model(**{k: out[k] for k in processor.model_input_names}).logits  # every placeholder gets its token
    assert logits.shape[:2] == out["input_ids"].shape



def test_a_long_take_is_decoded_a_few_clips_at_a_time_into_the_same_pixels(timed_take, tiny_tokenizer, monkeypatch):
    import processing.take_clips as take_clips

    _, processor = _model_and_processor(tiny_tokenizer)
    real, reads = take_clips.read_frames_with_times, []

    def counting(src, indices, *args, **kwargs):
        reads.append(len(indices))
        return real(src, indices, *args, **kwargs)

    monkeypatch.setattr(take_clips, "read_frames_with_times", counting)
    streamed = processor.process_videos([timed_take])["pixel_values_videos"]
    frames = processor.num_frames
    # 30 clips per view read CLIPS_PER_READ at a time: never more clips' decoded frames than that held at once
    per_read = take_clips.CLIPS_PER_READ
    groups = [per_read] * (30 // per_read) + ([30 % per_read] if 30 % per_read else [])
    assert sorted(reads) == sorted([g * frames for g in groups] * len(VIEWS))
    monkeypatch.setattr(take_clips, "CLIPS_PER_READ", 7)  # the grouping follows the setting: 7, 7, 7, 7, 2
    reads.clear()
    assert torch.equal(processor.process_videos([timed_take])["pixel_values_videos"], streamed)
    assert sorted(reads) == sorted([7 * frames] * 4 * len(VIEWS) + [2 * frames] * len(VIEWS))
    probed = take_clips.probe_view(timed_take["ego"], "ego")
    windows = clip_windows(probed.duration, CLIP_SECONDS, 64)
    rgb, _ = take_clips.read_view_clips(timed_take["ego"], "ego", probed, windows, processor.frame_sampler, frames)
    assert rgb.shape[0] == 30 * frames  # every clip's frames, as one array
    torch.testing.assert_close(streamed[0, 0].reshape(-1, *streamed.shape[-3:]), processor._to_pixels(rgb),
                               atol=0, rtol=0)  # the same pixels as resizing all the frames at once

def test_a_take_longer_than_max_clips_windows_gets_max_clips_equal_ones(tiny_tokenizer):
    _, processor = _model_and_processor(tiny_tokenizer, max_clips=4)
    frames = pattern_frames(600, 32, 32)  # decoded frames: 20 s at 30 fps
    out = processor.process_videos([{"ego": frames}])
    meta = out["video_metadata"][0][0]
    assert out["pixel_values_videos"].shape[2] == 4 and meta["clips_capped"] and meta["clip_seconds"] == 5.0
    assert meta["clip_windows"] == [[5.0 * k, 5.0 * (k + 1)] for k in range(4)]
    assert processor.token_times(out["video_metadata"])[0]["clips_capped"] is True  # what a feature cache stores
    shorter = processor.process_videos([{"ego": frames[:300]}])  # 10 s: 3 clips of 4 s, within max_clips
    assert processor.token_times(shorter["video_metadata"])[0]["clips_capped"] is False
    times = np.array(meta["times"]).reshape(4, -1)
    assert all((5 * k <= times[k]).all() and (times[k] < 5 * (k + 1)).all() for k in range(4))


def test_clips_of_a_variable_frame_rate_take_are_sampled_by_presentation_time(tiny_tokenizer, tmp_path):
    from tests.video_fixtures import phone_vfr_times

    _, processor = _model_and_processor(tiny_tokenizer)
    path = write_timed_video(tmp_path / "vfr.mp4", phone_vfr_times())  # 25 fps for 4 s, then 2.5 fps to 24 s
    out = processor.process_videos([{"exo1": str(path)}])
    meta = out["video_metadata"][0][1]
    assert meta["fps"] is not None and meta["clips"] == 6 and out["time_mask"].tolist() == [[1] * 6]
    seen = _times_in_pixels(out["pixel_values_videos"][0, 1], processor)
    assert seen == pytest.approx(meta["times"], abs=1e-6)
    frames = processor.num_frames
    for k in range(6):  # the frame on screen at each sample time of window k: none from another window
        clip = seen[k * frames : (k + 1) * frames]
        assert all(4 * k <= t < 4 * (k + 1) for t in clip), (k, clip)


def _short_and_long(tmp_path, frames_short: int = 40, frames_long: int = 80):
    """Two takes at 5 fps, each view with its own content: 8 s (2 clips of 4 s) and 16 s (4 clips)."""
    takes = []
    for seed, (name, count) in enumerate((("short", frames_short), ("long", frames_long))):
        folder = tmp_path / name
        folder.mkdir()
        takes.append({view: str(write_pattern_video(folder / f"{view}.mp4", num_frames=count, height=40, width=56,
                                                    fps=FPS, seed=10 * seed + v))
                      for v, view in enumerate(VIEWS)})
    return takes


def test_takes_of_different_lengths_in_one_batch_answer_as_they_do_alone(tiny_tokenizer, tmp_path):
    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens=2)
    takes = _short_and_long(tmp_path)
    prompt = processor.build_prompt()
    both = processor(text=[prompt] * 2, videos=takes, return_metadata=True)
    assert both["time_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert torch.all(both["pixel_values_videos"][0, :, 2:] == 0)
    alone = [processor(text=prompt, videos=[take], return_metadata=True) for take in takes]
    times = [t["times"] for t in processor.token_times(both["video_metadata"])]
    assert [len(t) for t in times] == [2 * 2, 4 * 2]
    answered = answer_takes(model, processor, both, token_times=times, generate_kwargs={"max_new_tokens": 4})
    logits = model(**{k: both[k] for k in processor.model_input_names}).logits
    for b, single in enumerate(alone):
        answer = answer_takes(model, processor, single, token_times=[times[b]],
                              generate_kwargs={"max_new_tokens": 4}).answers[0]
        together = answered.answers[b]
        assert together.feedback == answer.feedback and together.proficiency == answer.proficiency
        assert list(together.probabilities.values()) == pytest.approx(list(answer.probabilities.values()), abs=1e-5)
        assert list(together.view_weights.values()) == pytest.approx(list(answer.view_weights.values()), abs=1e-5)
        assert [step.time for step in together.timeline] == [step.time for step in answer.timeline] == times[b]
        for mine, its in zip(together.timeline, answer.timeline):
            assert list(mine.view_weights.values()) == pytest.approx(list(its.view_weights.values()), abs=1e-5)
        length = int(single["attention_mask"].sum())  # right padding: a take's tokens keep their positions
        own = model(**{k: single[k] for k in processor.model_input_names}).logits[0]
        torch.testing.assert_close(logits[b, :length], own[:length], atol=1e-5, rtol=0)


def test_the_tower_runs_over_clips_x_views_in_chunks_that_bound_its_batch(tiny_tokenizer, tmp_path, monkeypatch):
    import modeling_profvlm.modeling_profvlm as modeling

    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens=2)
    takes = _short_and_long(tmp_path)
    takes[1] = {"exo1": takes[1]["exo1"]}  # a missing view is not encoded
    out = processor.process_videos(takes)
    inputs = out["pixel_values_videos"], out["view_mask"], out["time_mask"]
    with torch.no_grad():
        whole = model.model.encode_views(*inputs)
    sizes, real_tower = [], modeling.run_tower
    monkeypatch.setattr(modeling, "run_tower",
                        lambda tower, clips: sizes.append(len(clips)) or real_tower(tower, clips))
    monkeypatch.setattr(modeling, "TOWER_CLIPS_PER_CHUNK", 3)
    with torch.no_grad():
        chunked = model.model.encode_views(*inputs)
    present = 2 * 2 + 1 * 4  # short take: 2 views x 2 clips; long take: 1 view x 4 clips
    assert sum(sizes) == present and max(sizes) == 3 and len(sizes) == 3
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_a_clip_encoder_streams_each_clip_through_the_tower_and_answers_as_the_pixels_do(tiny_tokenizer, tmp_path,
                                                                                          monkeypatch):
    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens=2)
    takes = _short_and_long(tmp_path)
    prompt = processor.build_prompt()
    pixels = processor(text=[prompt] * 2, videos=takes)
    calls, threads = [], set()

    def encoder(clip):  # the model's own, counted: one (T, 3, S, S) clip per call
        calls.append(tuple(clip.shape))
        threads.add(threading.get_ident())
        return model.model.encode_clip(clip)

    streamed = processor(text=[prompt] * 2, videos=takes, clip_encoder=encoder)
    assert "pixel_values_videos" not in streamed
    assert threads == {threading.get_ident()}  # every tower call on the caller's thread, none on a decoding thread
    assert set(calls) == {(processor.num_frames, 3, processor.image_size, processor.image_size)}
    assert len(calls) == int(pixels["time_mask"].sum()) * len(VIEWS)  # every own clip of every view, once
    expected = model.model.encode_views(pixels["pixel_values_videos"], pixels["view_mask"], pixels["time_mask"])
    torch.testing.assert_close(streamed["video_features"], expected, atol=1e-5, rtol=0)
    assert torch.equal(streamed["time_mask"], pixels["time_mask"]) and torch.equal(streamed["input_ids"],
                                                                                   pixels["input_ids"])
    from_pixels = model(**{k: pixels[k] for k in processor.model_input_names}).logits
    text = {k: streamed[k] for k in ("input_ids", "attention_mask", "view_mask", "time_mask")}
    torch.testing.assert_close(model(**text, video_features=streamed["video_features"]).logits, from_pixels,
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="clip_encoder streams clips over the take"):
        tiny_processor = _model_and_processor(tiny_tokenizer)[1]
        tiny_processor.clip_seconds = None
        tiny_processor.process_videos(takes[:1], clip_encoder=encoder)


def test_an_encoder_error_or_interrupt_reaches_the_caller_and_leaves_no_thread_waiting(tiny_tokenizer, tmp_path):
    _, processor = _model_and_processor(tiny_tokenizer)
    takes = _short_and_long(tmp_path)
    for error in (ValueError("the tower ran out of memory"), KeyboardInterrupt()):
        calls, raised = [], []

        def encoder(clip, error=error):
            calls.append(1)
            if len(calls) == 3:
                raise error
            return torch.zeros(1, 4)

        def call():  # on a thread of its own, so that a decoding thread left waiting fails the test, not hangs it
            try:
                processor.process_videos(takes, clip_encoder=encoder)
            except BaseException as err:  # noqa: BLE001
                raised.append(err)

        caller = threading.Thread(target=call)
        caller.start()
        caller.join(timeout=60)
        assert not caller.is_alive(), f"{type(error).__name__}: a decoding thread was left waiting"
        assert len(raised) == 1 and type(raised[0]) is type(error) and str(raised[0]) == str(error)


def test_nan_or_inf_in_padded_clips_changes_no_logit(tiny_tokenizer, tmp_path):
    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens=2)
    batch = processor(text=[processor.build_prompt()] * 2, videos=_short_and_long(tmp_path))
    inputs = {k: batch[k] for k in processor.model_input_names}
    inputs["view_mask"] = torch.tensor([[1, 0], [1, 1]])  # a missing view too
    reference = model(**inputs).logits
    features = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"], inputs["time_mask"])
    text = {k: inputs[k] for k in ("input_ids", "attention_mask", "view_mask", "time_mask")}
    assert torch.equal(model(**text, video_features=features).logits, reference)
    for poison in (float("nan"), float("inf"), 1e30):
        pixels = inputs["pixel_values_videos"].clone()
        pixels[0, :, 2:] = poison  # take 0's padded clips
        assert torch.equal(model(**{**inputs, "pixel_values_videos": pixels}).logits, reference), poison
        poisoned = features.clone()
        poisoned[0, :, 4:] = poison  # its padded steps (2 clips x 2 tokens are its own)
        poisoned[0, 1] = poison  # and its missing view
        assert torch.equal(model(**text, video_features=poisoned).logits, reference), poison


def test_clip_inputs_are_checked_in_one_line(tiny_tokenizer):
    model, _ = _model_and_processor(tiny_tokenizer)
    features = torch.zeros(2, 2, 3, 64)
    with pytest.raises(ValueError, match=r"time_mask rows \[1\]: each take needs >= 1 clip and its clips first"):
        model.get_video_features(video_features=features, view_mask=torch.ones(2, 2), time_mask=torch.tensor([[1, 1, 0], [0, 1, 1]]))
    with pytest.raises(ValueError, match=r"1 <= K <= max_clips=64, got \(2, 2, 65, 64\)"):
        model.get_video_features(video_features=torch.zeros(2, 2, 65, 64), view_mask=torch.ones(2, 2))
    paper = tiny_profvlm()
    with pytest.raises(ValueError, match="clip_seconds=None .* `profvlm init --clip_seconds S`"):
        paper.model.encode_views(torch.zeros(1, 5, 1, 4, 3, 32, 32), torch.ones(1, 5))
    from modeling_profvlm.configuration_profvlm import ProfVLMConfig

    for bad, match in (({"clip_seconds": 0}, "clip_seconds is 0"), ({"clip_seconds": float("nan")}, "clip_seconds is nan"),
                       ({"clip_seconds": 4, "max_clips": 0}, "max_clips is 0")):
        with pytest.raises(ValueError, match=match):
            ProfVLMConfig(vision_config={"model_type": "timesformer", "num_frames": 4}, **bad)


# Logits and camera weights of tiny_profvlm(temporal_tokens=N) on tiny_inputs() made by the code before clips existed
# (commit 09dced0): clip_seconds unset must keep them.
TODAY = {1: ([0.0, 0.121626, 0.023123, 0.126652], [0.0, -0.135305, 0.014795, 0.062053], 0.0912716,
             [0.241684, 0.323825, 0.434492, 0.0, 0.0]),
         2: ([0.0, 0.12618, 0.011499, 0.125545], [0.0, 0.09321, -0.102508, 0.058581], 0.091469,
             [0.300084, 0.325396, 0.37452, 0.0, 0.0])}


@pytest.mark.parametrize("temporal_tokens", [1, 2])
def test_without_clip_seconds_the_logits_are_todays(temporal_tokens):
    model, inputs = tiny_profvlm(temporal_tokens=temporal_tokens), tiny_inputs()
    inputs["input_ids"][:, 2 : 2 + temporal_tokens] = model.config.video_token_id
    out = model(**inputs)
    last, early, mean, weights = TODAY[temporal_tokens]
    assert out.logits[0, -1, :4].tolist() == pytest.approx(last, abs=2e-6)
    assert out.logits[1, 3, :4].tolist() == pytest.approx(early, abs=2e-6)
    assert out.logits.abs().mean().item() == pytest.approx(mean, abs=2e-7)
    assert out.view_weights[0].tolist() == pytest.approx(weights, abs=2e-6)
    assert torch.is_tensor(out.video_outputs.pooler_output) and out.video_outputs.step_mask is None


def test_a_checkpoint_without_the_clip_keys_is_todays(tiny_checkpoint, tmp_path, one_thread):
    """config.json / processor_config.json from before clip_seconds: read as unset, and the same inputs and logits as
    a checkpoint that states clip_seconds null."""
    from transformers import AutoProcessor

    import processing  # noqa: F401  (registers the processor)
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration

    old = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, old)
    for name in ("config.json", "processor_config.json"):
        data = json.loads((old / name).read_text())
        assert data.pop("clip_seconds") is None and data.pop("max_clips") == 64
        (old / name).write_text(json.dumps(data))
    video = str(write_pattern_video(tmp_path / "v.mp4", num_frames=60))
    outputs = []
    for folder in (tiny_checkpoint, old):
        model = ProfVLMForConditionalGeneration.from_pretrained(folder).eval()
        processor = AutoProcessor.from_pretrained(folder)
        assert model.config.clip_seconds is None and processor.clip_seconds is None
        batch = processor(text=[processor.build_prompt()] * 2, videos=[{"ego": video}, {"ego": video, "exo1": video}])
        assert set(batch) == {"input_ids", "attention_mask", "pixel_values_videos", "view_mask"}
        assert batch["pixel_values_videos"].ndim == 6 and "[" not in processor.tokenizer.decode(batch["input_ids"][0])
        with torch.no_grad():
            outputs.append((batch, model(**batch).logits))
    (new_batch, new_logits), (old_batch, old_logits) = outputs
    assert all(torch.equal(new_batch[k], old_batch[k]) for k in new_batch)
    assert torch.equal(new_logits, old_logits)


def test_profvlm_init_clip_options_reach_the_pipelines_timeline(tiny_text_dir, tmp_path, capsys):
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from profvlm.cli import main as profvlm
    from transformers import AutoProcessor

    base = tmp_path / "ckpt"
    args = ["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir", str(base)]
    for extra, message in ((["--max_clips", "8"], "--max_clips 8 needs --clip_seconds"),
                           (["--clip_seconds", "-1"], "clip_seconds is -1.0")):
        assert profvlm(args + extra) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert profvlm(args + ["--temporal_tokens", "2", "--clip_seconds", "4", "--max_clips", "8"]) == 0
    for name in ("config.json", "processor_config.json"):
        data = json.loads((base / name).read_text())
        assert (data["clip_seconds"], data["max_clips"]) == (4.0, 8), name
    from profvlm.model_card import build_model_card

    card = build_model_card(base).content  # the card states the clips, not one clip over the take
    frames = json.loads((base / "config.json").read_text())["vision_config"]["num_frames"]
    assert f"one clip of {frames} frames per 4-s window" in card and "past 32 s, 8 equal windows" in card
    assert "2 video token(s) per window (at most 16)" in card

    take = {view: str(write_timed_video(tmp_path / f"{view}.mp4", [i / FPS for i in range(50)])) for view in
            ("ego", "exo3")}  # 10 s: clips [0, 4), [4, 8), [8, 10)
    pipe = load_proficiency_pipeline(str(base), "cpu", "float32")
    result = pipe(take, max_new_tokens=3)
    times = [step["time"] for step in result["timeline"]]
    assert len(times) == 3 * 2 and times == sorted(times)
    assert [int(t // 4) for t in times] == [0, 0, 1, 1, 2, 2]  # each token within its own clip's window
    assert all(set(step["view_weights"]) == {"ego", "exo3"} for step in result["timeline"])

    # Takes of different lengths batched by the pipeline (batch_size=2) answer as they do alone.
    short = {"ego": str(write_timed_video(tmp_path / "short_ego.mp4", [i / FPS for i in range(15)]))}  # 3 s: 1 clip
    alone = [result, pipe(short, max_new_tokens=3)]
    batched = pipe([take, short], batch_size=2, max_new_tokens=3)
    assert [len(r["timeline"]) for r in batched] == [6, 2]
    for together, single in zip(batched, alone):
        assert together["proficiency"] == single["proficiency"] and together["feedback"] == single["feedback"]
        assert together["probabilities"] == pytest.approx(single["probabilities"], abs=1e-5)
        assert [s["time"] for s in together["timeline"]] == [s["time"] for s in single["timeline"]]

    processor_config = json.loads((base / "processor_config.json").read_text())
    (base / "processor_config.json").write_text(json.dumps({**processor_config, "clip_seconds": 2.0}))
    with pytest.raises(ValueError, match=r"clip_seconds=2.0 disagrees with the model's config.json \(clip_seconds=4.0\)"):
        AutoProcessor.from_pretrained(base)


def _clip_cache(model, processor, takes: list[dict], folder) -> list[str]:
    """Write a feature cache of `takes` (take uids "take0", ...) as extract_features does; returns the uids."""
    from training.feature_cache import build_manifest, manifest_fingerprint, sampling_spec, write_manifest, write_take

    manifest = build_manifest(model, sampling_spec(processor), torch.float32)
    write_manifest(folder, manifest)
    uids = [f"take{i}" for i in range(len(takes))]
    for uid, take in zip(uids, takes):
        out = processor.process_videos([take])
        features = model.model.encode_views(out["pixel_values_videos"], out["view_mask"])[0]
        write_take(folder, uid, features, out["view_mask"][0], VIEWS, manifest_fingerprint(manifest),
                   processor.token_times(out["video_metadata"])[0])
    return uids


def test_a_clip_cache_is_ragged_and_answers_as_the_pixels_do(tiny_tokenizer, tmp_path):
    from training.feature_cache import FeatureCache, read_manifest

    model, processor = _model_and_processor(tiny_tokenizer, temporal_tokens=2)
    takes = _short_and_long(tmp_path)  # 8 s and 16 s: 2 and 4 clips of 4 s
    uids = _clip_cache(model, processor, takes, tmp_path / "cache")
    assert read_manifest(tmp_path / "cache")["clips"] == {"clip_seconds": 4.0, "max_clips": model.config.max_clips}
    cache = FeatureCache(tmp_path / "cache")
    dim = model.config.vision_config.hidden_size
    assert [tuple(cache[uid][0].shape) for uid in uids] == [(2, 2 * 2, dim), (2, 4 * 2, dim)]  # (V, K x N, D)
    assert [len(cache.times_of(uid)["times"]) for uid in uids] == [4, 8]

    features, view_mask, time_mask = cache.stack(uids, [VIEWS, VIEWS])
    assert features.shape == (2, 2, 8, dim) and time_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert torch.all(features[0, :, 4:] == 0) and torch.equal(features[0, :, :4], cache[uids[0]][0])
    prompt = processor.build_prompt()
    pixels = processor(text=[prompt] * 2, videos=takes)
    cached = processor(text=[prompt] * 2, **cache.prompt_kwargs(uids))
    assert torch.equal(cached["input_ids"], pixels["input_ids"])  # the same stated times
    from_pixels = model(**{k: pixels[k] for k in processor.model_input_names}).logits
    from_cache = model(input_ids=cached["input_ids"], attention_mask=cached["attention_mask"], video_features=features,
                       view_mask=view_mask, time_mask=time_mask).logits
    torch.testing.assert_close(from_cache, from_pixels, atol=1e-5, rtol=0)


def test_a_cache_with_other_clip_settings_is_refused_naming_both(tiny_tokenizer, tmp_path):
    from training.feature_cache import FeatureCache, StaleFeatureCacheError, build_manifest, sampling_spec

    model, processor = _model_and_processor(tiny_tokenizer)
    _clip_cache(model, processor, _short_and_long(tmp_path, 20, 20), tmp_path / "cache")
    for other, message in (({"clip_seconds": 2.0}, r"clips.clip_seconds: cache has 4.0, expected 2.0"),
                           ({"max_clips": 8}, r"clips.max_clips: cache has 64, expected 8"),
                           ({"clip_seconds": None}, r'clips: cache has \{"clip_seconds": 4.0, "max_clips": 64\}, '
                                                    r"expected null")):
        settings = {"clip_seconds": CLIP_SECONDS, "max_clips": 64, **other}
        if settings["clip_seconds"] is None:
            del settings["max_clips"]
        changed = tiny_profvlm(num_views=len(VIEWS), view_names=VIEWS, **settings)
        changed.model.vision_tower.load_state_dict(model.model.vision_tower.state_dict())  # only the clips differ
        with pytest.raises(StaleFeatureCacheError, match=message):
            FeatureCache(tmp_path / "cache", build_manifest(changed, sampling_spec(processor), torch.float32))


def test_a_cache_made_without_clips_is_refused_by_a_clip_checkpoint_naming_both(tiny_tokenizer, tmp_path):
    from processing.processing_profvlm import ProfVLMProcessor
    from training.feature_cache import FeatureCache, StaleFeatureCacheError, build_manifest, sampling_spec

    clipped, processor = _model_and_processor(tiny_tokenizer)
    plain = tiny_profvlm(num_views=len(VIEWS), view_names=VIEWS)
    plain.model.vision_tower.load_state_dict(clipped.model.vision_tower.state_dict())  # only the clips differ
    plain_processor = ProfVLMProcessor.from_model_config(plain.config, tiny_tokenizer)
    _clip_cache(plain, plain_processor, _short_and_long(tmp_path, 20, 20), tmp_path / "cache")
    with pytest.raises(StaleFeatureCacheError, match=r'clips: cache has null, expected \{"clip_seconds": 4.0, '
                                                      r'"max_clips": 64\}'):
        FeatureCache(tmp_path / "cache", build_manifest(clipped, sampling_spec(processor), torch.float32))


def test_a_cache_without_clips_keeps_its_manifest_and_fingerprint(tiny_tokenizer):
    from dataset_scripts.hashing import sha256_of_json
    from training.feature_cache import build_manifest, manifest_fingerprint

    manifest = build_manifest(tiny_profvlm(), {"sampler": "uniform"}, torch.float32)
    assert "clips" not in manifest  # read as one clip per view (K = 1), as every cache before clips
    before_clips = ("format", "version", "tower_type", "tower", "sampling", "view_names", "feature_dim", "pooling",
                    "temporal_tokens", "dtype")  # the fingerprint's keys when those caches were written
    assert manifest_fingerprint(manifest) == sha256_of_json({k: manifest.get(k) for k in before_clips})


def test_extraction_and_sft_run_on_a_clip_cache(tiny_text_dir, tree, tmp_path, monkeypatch):
    from profvlm.assemble import build_base_checkpoint
    from training import extract_features, projector_alignment, sft
    from training.feature_cache import FeatureCache
    from training.sft_data import load_split

    # tenths of a second, so that a moment's own time and its token's time differ in the answer's text
    base = build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path / "ckpt", clip_seconds=0.5, max_clips=4,
                                 time_decimals=1)
    cache = tmp_path / "cache"
    summary = extract_features.main(["--model", str(base), "--data_dir", str(tree), "--output_dir", str(cache),
                                     "--dtype", "float32"])
    takes = FeatureCache(cache)
    uid = next(iter(sorted(p.stem for p in (cache / "features").glob("*.safetensors"))))
    features, view_mask = takes[uid]
    assert features.shape[1] == 2 and len(takes.times_of(uid)["times"]) == 2  # 1 s takes: 2 clips of 0.5 s, N = 1
    assert summary["clips"] == 2 * int(sum(int(takes[u][1].sum()) for u in
                                          (p.stem for p in (cache / "features").glob("*.safetensors"))))
    assert summary["tower_seconds_per_clip"] > 0
    aligned = []
    real_align = projector_alignment.align_projector
    monkeypatch.setattr(projector_alignment, "align_projector",
                        lambda *args, **kwargs: aligned.append(kwargs) or real_align(*args, **kwargs))
    trained_on = {}

    class SeenTrainer(sft.ProfVLMSFTTrainer):
        def __init__(self, *args, **kwargs):
            trained_on["rows"] = list(kwargs["train_dataset"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sft, "ProfVLMSFTTrainer", SeenTrainer)
    final = sft.main(["--model", str(base), "--data_dir", str(tree), "--features", str(cache), "--output_dir",
                      str(tmp_path / "sft"), "--max_steps", "1", "--per_device_train_batch_size", "2",
                      "--dataset_config", "demonstrator_moments", "--projector_alignment_moments", "true",
                      "--projector_alignment_steps", "2", "--eval_strategy", "no", "--save_strategy", "no",
                      "--report_to", "none", "--use_cpu", "true"])
    assert (final / "config.json").is_file()
    # The moments alignment saw each training take's clips: a step is marked where an expert names a moment, the
    # padding after a shorter take is not scored, and a take without moments has none marked.
    rows = list(load_split(str(tree), "demonstrator_moments", "train"))
    uids = list(dict.fromkeys(row["take_uid"] for row in rows))
    steps = aligned[0]["step_targets"]
    assert steps.shape[0] == len(uids)
    for uid, marks in zip(uids, steps.tolist()):
        own = len(takes.times_of(uid)["times"])
        assert marks[own:] == [-100] * (len(marks) - own) and set(marks[:own]) <= {0, 1}
        named = {m["time"] for row in rows if row["take_uid"] == uid for m in row.get("moments") or []}
        assert (1 in marks) == bool(named), uid
    assert any(1 in marks for marks in steps.tolist())
    # The answers it trained on name each moment at the time the prompt states for the token that shows it (a copy
    # of a time in the prompt), one for one with the experts' moments, which are not all at those times.
    def prompt_times(uid: str) -> set[float]:
        return {floor_time(t, 1) for t in takes.times_of(uid)["times"]}

    written = 0
    for row in trained_on["rows"]:
        times = [m["time"] for m in parse_moments(row["feedback"])]
        assert set(times) <= prompt_times(row["take_uid"]), (row["take_uid"], times, prompt_times(row["take_uid"]))
        written += len(times)
    expert = [(r["take_uid"], floor_time(m["time"], 1)) for r in rows for m in r.get("moments") or []]
    assert written == len(expert) > 0
    assert any(t not in prompt_times(uid) for uid, t in expert)  # so the answers were moved, not written as they came
    from training.evaluate_profvlm import main as evaluate

    evaluate(["--model", str(final), "--data_dir", str(tree), "--features", str(cache), "--output_dir",
              str(tmp_path / "eval"), "--max_new_tokens", "2", "--dtype", "float32"])
    lines = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    scored = [line for line in lines if line["view_setting"] == "ego_exos"]
    assert scored and len(scored) == len({line["take_uid"] for line in scored})  # every validation take, once
    assert all(line["proficiency"] in PROFICIENCY_LABELS and sum(line["probabilities"].values()) == pytest.approx(1.0)
               for line in scored)


def test_extraction_and_batch_prediction_stream_each_clip_through_the_tower(tiny_text_dir, tree, tmp_path,
                                                                          monkeypatch):
    """With clips over the take, extraction and `profvlm predict --data_dir` put each clip through the tower as it is
    decoded, in the process that holds the model (decoding workers asked for or not): no take's pixels are batched,
    and the cache and the predictions equal those of the pixels and of pipeline()."""
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration, ProfVLMModel
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from processing.processing_profvlm import ProfVLMProcessor
    from profvlm.assemble import build_base_checkpoint
    from profvlm.cli import main
    from training import extract_features
    from training.feature_cache import FeatureCache

    base = build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path / "ckpt", clip_seconds=0.5, max_clips=4)
    encoded, pixel_batches = [], []
    real_encode, real_clips = ProfVLMModel.encode_clip, ProfVLMProcessor._process_clips

    def encode_clip(self, clip):
        encoded.append(tuple(clip.shape))
        return real_encode(self, clip)

    def process_clips(self, takes, frame_sampler, seed, clip_encoder=None):
        if clip_encoder is None:
            pixel_batches.append(len(takes))
        return real_clips(self, takes, frame_sampler, seed, clip_encoder)

    monkeypatch.setattr(ProfVLMModel, "encode_clip", encode_clip)
    monkeypatch.setattr(ProfVLMProcessor, "_process_clips", process_clips)
    cache = tmp_path / "cache"
    summary = extract_features.main(["--model", str(base), "--data_dir", str(tree), "--output_dir", str(cache),
                                     "--dtype", "float32", "--num_workers", "2"])
    # Every present (view, clip) pair went through the tower alone, here (a worker's calls would not be seen).
    assert len(encoded) == summary["clips"] > 0 and {len(shape) for shape in encoded} == {4}
    assert pixel_batches == [] and summary["clips_capped_takes"] == 0  # 1-s takes: 2 clips of 0.5 s each
    takes = extract_features.collect_takes(str(tree), "demonstrator", ["train", "validation"])
    uid, views = next(iter(takes.items()))
    model = ProfVLMForConditionalGeneration.from_pretrained(base, dtype=torch.float32).eval()
    processor = ProfVLMProcessor.from_pretrained(base)
    out = processor.process_videos([views])
    with torch.no_grad():
        expected = model.model.encode_views(out["pixel_values_videos"], out["view_mask"], out["time_mask"])[0]
    cached, view_mask = FeatureCache(cache)[uid]
    assert torch.equal(view_mask, out["view_mask"][0])
    torch.testing.assert_close(cached.float(), expected, atol=1e-5, rtol=1e-5)

    encoded.clear()
    pixel_batches.clear()
    assert main(["predict", "--model", str(base), "--data_dir", str(tree), "--split", "validation", "--output_dir",
                 str(tmp_path / "pred"), "--num_workers", "2", "--no_feedback", "--dtype", "float32"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()]
    assert lines and encoded and pixel_batches == []
    pipe = load_proficiency_pipeline(str(base), dtype="float32")
    validation = extract_features.collect_takes(str(tree), "demonstrator", ["validation"])
    for line in lines[:2]:
        alone = pipe(validation[line["take_uid"]], return_feedback=False)
        assert line["proficiency"] == alone["proficiency"]
        for label, p in alone["probabilities"].items():
            assert line["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_snapped_answers_name_the_time_of_the_token_that_shows_each_moment():
    from training.sft_data import snap_moments_to_tokens

    times = [0.5, 2.5, 4.5, 6.5, 8.5, 10.5]  # 4-s clips of two tokens each; the prompt writes [0:00], [0:02], ...
    # 5.1 s lies nearer the token at 4.5 than the one at 6.5; 10 s nearest 10.5; a tie would go to the later token
    assert snap_moments_to_tokens("[0:05] Slip on that touch. [0:10] A clean touch.", times) == \
        "[0:04] Slip on that touch. [0:10] A clean touch."
    assert snap_moments_to_tokens("[0:05.1] good: A clean touch. [0:05.5] tip: Slower.", times, 1) == \
        "[0:04.5] good: A clean touch. [0:06.5] tip: Slower."
    assert snap_moments_to_tokens("Steady pace throughout.", times) == "Steady pace throughout."


def test_feature_takes_of_different_lengths_are_padded_into_one_batch():
    from modeling_profvlm.answering import batch_of_takes

    short = {"video_features": torch.ones(1, 2, 2, 3), "view_mask": torch.tensor([[1, 0]]),
             "time_mask": torch.ones(1, 1, dtype=torch.long)}  # 1 clip x 2 tokens
    long = {"video_features": torch.full((1, 2, 6, 3), 2.0), "view_mask": torch.tensor([[1, 1]]),
            "time_mask": torch.ones(1, 3, dtype=torch.long)}  # 3 clips x 2 tokens
    batch = batch_of_takes([short, long], temporal_tokens=2)
    assert batch["video_features"].shape == (2, 2, 6, 3)
    assert batch["video_features"][0, :, :2].eq(1).all() and batch["video_features"][0, :, 2:].eq(0).all()
    assert batch["time_mask"].tolist() == [[1, 0, 0], [1, 1, 1]] and batch["view_mask"].tolist() == [[1, 0], [1, 1]]
    one_clip = batch_of_takes([{**short, "time_mask": None}, {**short, "time_mask": None}], temporal_tokens=2)
    assert "time_mask" not in one_clip and one_clip["video_features"].shape == (2, 2, 2, 3)


def test_takes_decoded_apart_are_padded_into_one_batch():
    from modeling_profvlm.answering import concat_takes

    parts = [{"pixel_values_videos": torch.ones(1, 2, k, 4, 3, 8, 8), "view_mask": torch.ones(1, 2, dtype=torch.long),
              "time_mask": torch.ones(1, k, dtype=torch.long)} for k in (3, 1)]
    batch = concat_takes(parts)
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 4, 3, 8, 8)
    assert batch["time_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["pixel_values_videos"][1, :, 1:].abs().sum() == 0
    plain = concat_takes([{"pixel_values_videos": torch.ones(1, 2, 4, 3, 8, 8), "view_mask": torch.ones(1, 2)}] * 2)
    assert set(plain) == {"pixel_values_videos", "view_mask"} and plain["pixel_values_videos"].shape[0] == 2
