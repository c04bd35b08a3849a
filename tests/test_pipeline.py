"""The `proficiency-estimation` pipeline: input forms, batching, masked views, bad input, and the Hub-cache path."""
import json

import pytest
from transformers import pipeline

import modeling_profvlm  # noqa: F401  (registers the task)
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline
from tests.serving_helpers import TINY_MAX_NEW_TOKENS, check_result, direct_label_log_likelihoods, write_take
from tests.video_fixtures import write_corrupt

GEN = {"max_new_tokens": TINY_MAX_NEW_TOKENS}


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return pipeline("proficiency-estimation", model=str(tiny_checkpoint), pipeline_class=ProficiencyEstimationPipeline)


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("takes")
    return [write_take(root / "full", seed=1), write_take(root / "two", views=("ego", "exo3"), seed=2),
            write_take(root / "three", views=("exo1", "exo2", "exo4"), seed=3)]


def test_hub_cache_pipeline_without_the_project(hub_space, tmp_path):
    take = write_take(tmp_path / "take", views=("ego", "exo1", "exo2"))
    result = hub_space.run_isolated(
        f"""
import json
from transformers import pipeline
pipe = pipeline(model="org/profvlm", trust_remote_code=True)
assert type(pipe).__name__ == "ProficiencyEstimationPipeline", type(pipe)
assert "transformers_modules" in type(pipe).__module__, type(pipe).__module__
print(json.dumps(pipe({take!r}, max_new_tokens=4)))
""",
        tmp_path,
    )
    check_result(json.loads(result.stdout.strip().splitlines()[-1]), ["ego", "exo1", "exo2"])


def test_task_name_alone_uses_the_installed_pipeline(tiny_checkpoint):
    pipe = pipeline("proficiency-estimation", model=str(tiny_checkpoint))
    assert type(pipe) is ProficiencyEstimationPipeline


def test_label_is_the_argmax_of_scores_and_of_a_direct_log_likelihood(pipe, takes):
    for take in takes[1:]:  # the direct computation decodes every view once per label: keep it to two takes
        result = pipe(take, **GEN)
        check_result(result, take)
        direct = direct_label_log_likelihoods(pipe.model, pipe.processor, take)
        assert result["proficiency"] == max(direct, key=direct.get)
        assert sum(result["view_weights"].values()) == pytest.approx(1.0, abs=1e-4)


def test_batch_of_three_equals_three_single_calls(pipe, takes):
    singles = [pipe(take, **GEN) for take in takes]
    for batch_size in (1, 3):
        batched = pipe(takes, batch_size=batch_size, **GEN)
        assert len(batched) == 3
        for one, many in zip(singles, batched):
            assert many["proficiency"] == one["proficiency"] and many["feedback"] == one["feedback"]
            assert many["probabilities"] == pytest.approx(one["probabilities"], abs=1e-5)
            assert many["view_weights"] == pytest.approx(one["view_weights"], abs=1e-5)


def test_ego_only_and_exo_only_takes(pipe, tmp_path):
    take = write_take(tmp_path / "t", seed=4)
    ego_only = pipe({"ego": take["ego"]}, **GEN)
    check_result(ego_only, ["ego"])
    assert ego_only["view_weights"]["ego"] == pytest.approx(1.0)
    exo_only = pipe([None, take["exo1"], take["exo2"], take["exo3"], take["exo4"]], **GEN)
    check_result(exo_only, ["exo1", "exo2", "exo3", "exo4"])


def test_input_forms_agree_dict_list_and_decoded_frames(pipe, takes):
    from processing.video_io import probe_video, read_frames

    take = takes[1]  # ego + exo3
    as_dict = pipe(take, return_feedback=False)
    as_list = pipe([take["ego"], None, None, take["exo3"]], return_feedback=False)
    frames = {v: read_frames(p, range(probe_video(p).num_frames)) for v, p in take.items()}
    as_frames = pipe(frames, return_feedback=False)
    for other in (as_list, as_frames):
        assert other["proficiency"] == as_dict["proficiency"]
        assert other["probabilities"] == pytest.approx(as_dict["probabilities"], abs=1e-4)
    check_result(as_frames, take)


def test_classification_only_skips_generation_with_the_same_scores(pipe, takes):
    full = pipe(takes[0], **GEN)
    fast = pipe(takes[0], return_feedback=False)
    assert fast["feedback"] is None and fast["probabilities"] == pytest.approx(full["probabilities"], abs=1e-6)


def test_feedback_follows_the_scored_label_and_sampling_options_pass_through(pipe, takes, monkeypatch):
    seen = []
    original = pipe.model.generate
    monkeypatch.setattr(pipe.model, "generate", lambda **kw: seen.append(kw) or original(**kw))
    result = pipe(takes[0], max_new_tokens=3, do_sample=True, temperature=0.7, top_k=5)
    check_result(result, takes[0])
    kwargs = seen[0]
    assert kwargs["do_sample"] is True and kwargs["temperature"] == 0.7 and kwargs["top_k"] == 5
    assert kwargs["max_new_tokens"] == 3
    prompt = pipe.processor.tokenizer.decode(kwargs["input_ids"][0])
    assert prompt.endswith("Proficiency: " + result["proficiency"])
    pipe(takes[0], max_new_tokens=2)
    assert seen[1]["do_sample"] is False  # greedy by default
    with pytest.raises(TypeError, match="unknown argument"):
        pipe(takes[0], temprature=0.5)


@pytest.mark.parametrize(
    "make, error, expected",
    [
        (lambda d: {"ego": str(d / "missing.mp4")}, FileNotFoundError, ["ego", "missing.mp4"]),
        (lambda d: {"exo2": str(write_corrupt(d / "broken.mp4"))}, ValueError, ["exo2", "broken.mp4"]),
        (lambda d: {"exo7": str(d / "x.mp4")}, ValueError, ["exo7", "x.mp4", "exo4"]),
        (lambda d: [], ValueError, ["Empty"]),
        (lambda d: {}, ValueError, ["ego"]),
    ],
    ids=["missing_file", "corrupt_video", "unknown_view", "empty_list", "empty_dict"],
)
def test_bad_input_names_view_and_file(pipe, tmp_path, make, error, expected):
    with pytest.raises(error) as info:
        pipe(make(tmp_path), return_feedback=False)
    for part in expected:
        assert part in str(info.value), (part, str(info.value))


def test_no_label_outside_the_four_even_for_a_degenerate_model(pipe, takes, monkeypatch):
    import torch

    # An LM head with all logits equal: free text would be garbage, the scored label is still one of the four.
    head = pipe.model.get_output_embeddings()
    monkeypatch.setattr(head, "weight", torch.nn.Parameter(torch.zeros_like(head.weight)))
    result = pipe(takes[0], **GEN)
    check_result(result, takes[0])
    # Every token then has probability 1/V, so label i scores V**-n_i (n_i = its continuation's token count): the
    # shortest label wins and the probabilities follow in closed form.
    tokenizer, vocab = pipe.processor.tokenizer, head.weight.shape[0]
    counts = {label: len(tokenizer(f"Proficiency: {label}", add_special_tokens=False)["input_ids"])
              for label in PROFICIENCY_LABELS}
    weights = {label: float(vocab) ** -(n - min(counts.values())) for label, n in counts.items()}
    expected = {label: w / sum(weights.values()) for label, w in weights.items()}
    assert result["probabilities"] == pytest.approx(expected, abs=1e-5)
    assert result["proficiency"] == min(PROFICIENCY_LABELS, key=lambda label: (counts[label], PROFICIENCY_LABELS.index(label)))


@pytest.mark.parametrize("native_bf16", [True, False])
def test_no_dtype_follows_the_device_policy_and_keeps_the_fp32_label(tiny_checkpoint, takes, monkeypatch, native_bf16):
    import torch

    from modeling_profvlm import device_policy

    monkeypatch.delenv("PROFVLM_DTYPE", raising=False)  # the policy itself, not the environment's forced dtype
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: native_bf16)  # this machine kind, mocked
    auto = pipeline("proficiency-estimation", model=str(tiny_checkpoint), pipeline_class=ProficiencyEstimationPipeline,
                    device="cpu")
    expected = torch.bfloat16 if native_bf16 else torch.float32
    assert auto.model.model.vision_tower.dtype == expected and auto.model.model.language_model.dtype == expected
    assert auto.model.model.multi_modal_projector.fc_in.weight.dtype == torch.float32
    assert auto.device_policy.tower_dtype == expected
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    fp32 = load_proficiency_pipeline(str(tiny_checkpoint), "cpu", "float32")  # an explicit dtype wins
    assert fp32.model.model.vision_tower.dtype == torch.float32
    # ... and means the weights as saved, not a copy rounded to bf16 on the way
    from safetensors.torch import load_file

    saved = load_file(str(tiny_checkpoint / "model.safetensors"))
    name = "model.vision_tower.encoder.layer.0.attention.attention.qkv.weight"
    assert torch.equal(dict(fp32.model.named_parameters())[name], saved[name])
    for take in takes:
        assert auto(take, return_feedback=False)["proficiency"] == fp32(take, return_feedback=False)["proficiency"]


def test_a_checkpoint_trained_on_fp32_features_keeps_its_tower_in_fp32(tiny_checkpoint, tmp_path, monkeypatch):
    import json
    import shutil

    import torch

    from modeling_profvlm import device_policy

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "vision_feature_dtype": "float32"}))
    monkeypatch.delenv("PROFVLM_DTYPE", raising=False)  # the policy itself, not the environment's forced dtype
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: True)
    pipe = pipeline("proficiency-estimation", model=str(ckpt), pipeline_class=ProficiencyEstimationPipeline, device="cpu")
    assert pipe.model.model.vision_tower.dtype == torch.float32  # the dtype its training features were made in
    assert pipe.model.model.language_model.dtype == torch.bfloat16  # the rest follows the policy
    pipe.set_device_policy("bfloat16")  # told otherwise
    assert pipe.model.model.vision_tower.dtype == torch.bfloat16
