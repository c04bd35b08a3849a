"""The pipeline's timed output: `moments` parsed from the generated feedback (none past the take's end, counted in a
warning), [] for a label-only checkpoint, the per-temporal-token `timeline` of camera weights, and `profvlm predict`'s
timeline of them."""
import json
import logging
import math
import types

import pytest
import torch

from modeling_profvlm import answering
from modeling_profvlm.answer import Moment, ProfVLMAnswer, TimelineStep, moments_within
from modeling_profvlm.answering import answer_takes, take_duration
from modeling_profvlm.label_scoring import GeneratedText, LabelScores
from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
from profvlm.report import format_report
from tests.moments_checkpoint import EXPECTED_MOMENTS, MOMENTS_FEEDBACK, MOMENTS_LABEL
from tests.serving_helpers import check_result, timed, write_take

VIEWS = ("ego", "exo1", "exo2", "exo3", "exo4")
MAX_NEW_TOKENS = 48  # the tiny tokenizer spells MOMENTS_FEEDBACK in ~40 tokens


@pytest.fixture(scope="module")
def long_take(tmp_path_factory) -> dict[str, str]:
    """2.5 s per view (75 frames at 30 fps): moments at 0:00 and 0:02 lie inside it, 9:59 does not."""
    return write_take(tmp_path_factory.mktemp("moments_take"), views=VIEWS, seed=4, num_frames=75)


def test_moments_checkpoint_gives_its_moments_and_drops_the_late_one(tiny_moments_checkpoint, long_take, caplog):
    pipe = load_proficiency_pipeline(str(tiny_moments_checkpoint), "cpu", "float32")
    with caplog.at_level(logging.WARNING, logger="modeling_profvlm.answer"):
        result = pipe(long_take, max_new_tokens=MAX_NEW_TOKENS)
    check_result(result, VIEWS, temporal_tokens=2, duration=2.5)
    assert result["proficiency"] == MOMENTS_LABEL and result["probabilities"][MOMENTS_LABEL] > 0.9
    assert result["feedback"] == MOMENTS_FEEDBACK  # what it was trained to say, with the late moment
    assert timed(result["moments"]) == EXPECTED_MOMENTS
    # its two temporal tokens: one timeline entry each, with camera weights over the take's views
    assert len(result["timeline"]) == 2 and all(sorted(step["view_weights"]) == sorted(VIEWS)
                                                for step in result["timeline"])
    warnings = [r.getMessage() for r in caplog.records if "past the take's end" in r.getMessage()]
    assert warnings == ["dropped 1 of 3 moments timed past the take's end (2.50 s): 599 s"]
    # a batch gives every take its own moments
    assert [timed(r["moments"]) for r in pipe([long_take, long_take], max_new_tokens=MAX_NEW_TOKENS)] == [EXPECTED_MOMENTS] * 2


def test_label_only_checkpoint_gives_no_moments(tiny_checkpoint, long_take):
    pipe = load_proficiency_pipeline(str(tiny_checkpoint), "cpu", "float32")
    result = pipe(long_take, max_new_tokens=8)
    check_result(result, VIEWS, duration=2.5)
    assert "[" not in result["feedback"]  # an untrained LM's text, not moments
    assert result["moments"] == [] and result["timeline"] == []
    assert pipe(long_take, return_feedback=False)["moments"] == []


def test_moments_within_the_take():
    feedback = "[0:01] early [0:04] on the end [0:05] after it [1:00:00] an hour in"
    assert moments_within(feedback, 4.0) == [{"time": 1.0, "text": "early"}, {"time": 4.0, "text": "on the end"}]
    assert [m["time"] for m in moments_within(feedback, math.nan)] == [1.0, 4.0, 5.0, 3600.0]  # unknown length
    assert [m["time"] for m in moments_within(feedback, None)] == [1.0, 4.0, 5.0, 3600.0]
    assert moments_within("Good extension, steady pace.", 4.0) == []
    assert moments_within("", 4.0) == []


def test_take_duration_from_the_view_metadata():
    assert take_duration([None, {"duration": 2.5}, {"duration": 2.0}]) == 2.5
    assert take_duration([{"num_frames": 8, "fps": None}, None]) is None  # no view states its length


def test_timeline_from_pixels_with_two_temporal_tokens(tiny_moments_checkpoint, long_take):
    """N = 2 end to end: the timeline has each token's time (the processor's first frame of each half) and camera
    weights over the present views that sum to 1, and the moments come back as with N = 1."""
    pipe = load_proficiency_pipeline(str(tiny_moments_checkpoint), "cpu", "float32")
    take = {v: p for v, p in long_take.items() if v != "exo2"}
    result = pipe(take, max_new_tokens=MAX_NEW_TOKENS)
    check_result(result, [v for v in VIEWS if v != "exo2"], temporal_tokens=2, duration=2.5)
    assert timed(result["moments"]) == EXPECTED_MOMENTS
    # 4 uniform frames of 75 at 30 fps are frames 9, 28, 46, 65; token 0 starts at frame 9, token 1 at frame 46
    assert [round(step["time"], 6) for step in result["timeline"]] == [0.3, round(46 / 30, 6)]
    for step in result["timeline"]:
        assert set(step["view_weights"]) == set(take)
        assert math.isclose(sum(step["view_weights"].values()), 1.0, abs_tol=1e-5)


def test_answer_takes_builds_timeline_moments_and_cameras_of_present_views(tiny_checkpoint, monkeypatch):
    """`answer_takes` with N = 3 temporal tokens and exo2 missing, the model's scores and generated text stubbed: the
    level is the most probable label, the timeline has each token's time and the present views' weights, a moment
    past the take's end is dropped, each moment names the camera weighted most in its token."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    labels = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")
    scores = LabelScores(labels=labels, log_likelihoods=torch.zeros(1, 4),
                         probabilities=torch.tensor([[0.1, 0.2, 0.3, 0.4]]),
                         view_weights=torch.tensor([[0.4, 0.3, 0.0, 0.2, 0.1]]), video_features=torch.zeros(1, 5, 3, 2),
                         prompt_rows=[[1, 2]],
                         step_view_weights=torch.tensor([[[0.25, 0.25, 0.0, 0.25, 0.25],
                                                          [0.5, 0.125, 0.0, 0.25, 0.125],
                                                          [0.0, 0.0, 0.0, 1.0, 0.0]]]))
    asked = {}
    monkeypatch.setattr(answering, "score_labels", lambda *args, **kwargs: scores)

    def generate(model, tokenizer, rows, chosen, features, view_mask, **kwargs):
        asked.update(labels=chosen, **kwargs)
        text = "\nFeedback: [0:01] slip [0:05] tip: steady [0:07] late"
        return [GeneratedText(text, [-0.1] * len(text), list(range(1, len(text) + 1)))]  # one token per character

    monkeypatch.setattr(answering, "generate_after_labels", generate)
    model = types.SimpleNamespace(config=types.SimpleNamespace(view_names=["ego", "exo1", "exo2", "exo3", "exo4"],
                                                               temporal_tokens=3, states_token_times=True,
                                                               proficiency_labels=list(labels)))
    batch = {"video_features": torch.zeros(1, 5, 3, 2), "view_mask": torch.tensor([[1, 1, 0, 1, 1]])}
    answer = answer_takes(model, processor, batch, prompt_rows=[[1, 2]], durations=[6.0],
                          token_times=[[0.0, 2.0, 4.0]]).answers[0]
    assert asked["labels"] == ["Late Expert"] and asked["do_sample"] is False  # greedy after the chosen label
    assert answer.proficiency == "Late Expert" and answer.views == ["ego", "exo1", "exo3", "exo4"]
    assert answer.feedback == "[0:01] slip [0:05] tip: steady [0:07] late"
    # 0:07 is past 6.0 s. Each moment's probability: its marker's (and category word's) tokens, -0.1 each here.
    assert answer.moments == [Moment(1.0, "slip", "ego", pytest.approx(math.exp(-0.1 * len("[0:01]")))),
                              Moment(5.0, "steady", "exo3", pytest.approx(math.exp(-0.1 * len("[0:05] tip:"))),
                                     "needs_improvement")]
    assert answer.to_dict()["timeline"] == [
        {"time": 0.0, "view_weights": {"ego": 0.25, "exo1": 0.25, "exo3": 0.25, "exo4": 0.25}},
        {"time": 2.0, "view_weights": {"ego": 0.5, "exo1": 0.125, "exo3": 0.25, "exo4": 0.125}},
        {"time": 4.0, "view_weights": {"ego": 0.0, "exo1": 0.0, "exo3": 1.0, "exo4": 0.0}},
    ]
    assert answer.view_weights == pytest.approx({"ego": 0.4, "exo1": 0.3, "exo3": 0.2, "exo4": 0.1})
    assert ProfVLMAnswer.from_dict(answer.to_dict()) == answer


def test_camera_at_uses_the_step_that_covers_the_time():
    answer = ProfVLMAnswer("Novice", {"Novice": 1.0}, view_weights={"ego": 0.5, "exo1": 0.3, "exo3": 0.2},
                           timeline=[TimelineStep(0.0, {"ego": 0.2, "exo1": 0.7, "exo3": 0.1}),
                                     TimelineStep(2.0, {"ego": 0.1, "exo1": 0.1, "exo3": 0.8})])
    assert [answer.camera_at(t) for t in (0.0, 1.9, 2.0, 3.5)] == ["exo1", "exo1", "exo3", "exo3"]
    whole_take = ProfVLMAnswer("Novice", {"Novice": 1.0}, view_weights={"ego": 0.5, "exo1": 0.3})
    assert whole_take.camera_at(9.0) == "ego"  # N = 1: over the whole take
    assert ProfVLMAnswer("Novice", {"Novice": 1.0}).camera_at(1.0) is None


def test_report_prints_the_moments_as_a_timeline():
    result = {"proficiency": "Novice", "probabilities": {"Novice": 0.7, "Late Expert": 0.3},
              "feedback": "[0:01] slip [0:03] a clean rep", "view_weights": {"ego": 0.6, "exo2": 0.4},
              "moments": [{"time": 1.0, "text": "slip", "camera": "exo2", "probability": None},
                          {"time": 3.0, "text": "a clean rep", "camera": "ego", "probability": 0.834},
                          {"time": 3.7, "text": "elbow in", "camera": "ego", "probability": 0.5,
                           "category": "needs_improvement"}],
              "timeline": [{"time": 0.0, "view_weights": {"ego": 0.3, "exo2": 0.7}},
                           {"time": 2.0, "view_weights": {"ego": 0.9, "exo2": 0.1}}]}
    report = format_report(result, {"ego": "a/ego.mp4", "exo2": "a/cam02.mp4"})
    assert "Moments (time │ remark  [the camera weighted most then, the moment's probability]):\n" \
           "  0:01 │ slip  [exo2]\n  0:03 │ a clean rep  [ego, p 0.83]\n  0:03.7 │ tip: elbow in  [ego, p 0.50]\n" in report
    assert "Feedback:" not in report  # the timeline is the feedback
    plain = format_report({**result, "moments": [], "timeline": []}, {})
    assert "Feedback:\n  [0:01] slip [0:03] a clean rep" in plain and "Moments" not in plain


def test_predict_command_prints_the_moments_checkpoints_timeline(tiny_moments_checkpoint, long_take, capsys):
    from profvlm.cli import main

    args = ["predict", "--model", str(tiny_moments_checkpoint), "--max_new_tokens", str(MAX_NEW_TOKENS),
            "--device", "cpu", "--dtype", "float32"] + [f"--view={v}={p}" for v, p in long_take.items()]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert timed(result["moments"]) == EXPECTED_MOMENTS
    steps = result["timeline"]  # 2 temporal tokens: the camera weighted most in the token that covers each moment
    # 0:00 lies in the first token (it starts at the first sampled frame, 0.3 s), 0:02 in the second (from 1.53 s)
    assert len(steps) == 2 and 0.0 < steps[0]["time"] < steps[1]["time"] <= 2.0

    def top(step):
        return max(step["view_weights"], key=step["view_weights"].get)

    assert main(args) == 0
    report = capsys.readouterr().out
    p0, p2 = (f"{m['probability']:.2f}" for m in result["moments"])  # the model's, each in (0, 1]
    assert all(0 < m["probability"] <= 1 for m in result["moments"])
    assert f"  0:00 │ clean rep  [{top(steps[0])}, p {p0}]\n  0:02 │ slip  [{top(steps[1])}, p {p2}]\n" in report
    assert "9:59" not in report and "late" not in report  # past the take's end
