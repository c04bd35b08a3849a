"""[training] SFT: options and configs, labels on the assistant answer only, cached features == pixels, resume after
SIGKILL, two CPU ranks with disjoint shards, and the merged self-contained final checkpoint."""
import re
import signal
import subprocess
import sys

import pytest
import torch

from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, format_target
from processing.processing_profvlm import ProfVLMProcessor
from tests.training_helpers import (
    REPO_ROOT,
    adapter_weights,
    read_seen_takes,
    run_script,
    script_env,
)
from training.collator import IGNORE_INDEX, ProfVLMCollator
from training.sft import build_trainer, parse_args
from training.sft_data import load_split, to_training_rows


def test_help_lists_script_and_every_sftconfig_option(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--config YAML", "--model", "--data_dir", "--dataset_config", "--features", "--output_dir", "--max_steps",
                   "--num_train_epochs", "--resume_from_checkpoint", "--assistant_only_loss", "--lora_r"):
        assert option in text, option


def test_yaml_config_sets_options_the_command_line_wins_and_cpu_needs_no_flag(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 7\nlearning_rate: 3.0e-3\nlora_r: 4\nmax_length: 512\n"
                      "remove_unused_columns: true\n")
    script_args, args = parse_args(["--config", str(config), "--model", "m", "--data_dir", "d",
                                    "--learning_rate", "1e-4"])
    assert (args.num_train_epochs, args.learning_rate, script_args.lora_r) == (7, 1e-4, 4)
    # What the collator relies on is forced whatever the config says.
    assert args.max_length is None and args.remove_unused_columns is False
    assert args.dataset_kwargs["skip_prepare_dataset"] is True
    assert args.eval_strategy == "epoch" and args.save_strategy == "epoch"
    if not torch.cuda.is_available():  # bf16 autocast exactly where the device policy picks bf16
        from modeling_profvlm.device_policy import resolve_device_policy

        assert args.use_cpu is True and args.bf16 is (resolve_device_policy("cpu").lm_dtype == torch.bfloat16)
    for shipped in ("cpu_demo.yaml", "egoexo4d_1gpu.yaml"):
        _, a = parse_args(["--config", f"training/configs/{shipped}", "--model", "m", "--data_dir", "d"])
        assert a.eval_strategy == "epoch"
    _, paper = parse_args(["--config", "training/configs/egoexo4d_1gpu.yaml", "--model", "m", "--data_dir", "d"])
    assert paper.num_train_epochs == 6


@pytest.mark.parametrize("variant", ["right_padding", "left_padding", "pad_is_eos", "prompts_of_different_length"])
def test_labels_cover_only_the_assistant_answer_and_its_end_token(tiny_checkpoint, tree, variant, monkeypatch):
    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    if variant == "prompts_of_different_length":
        from processing.text_format import build_messages

        def messages(row, labels):  # the label-only row gets a much longer instruction than the other
            words = "Estimate the proficiency. " * (1 if row["feedback"] else 12)
            return build_messages(row["label"], row["feedback"] or None, instruction=words.strip())

        monkeypatch.setattr("training.collator.row_messages", messages)
    tok = processor.tokenizer
    if variant == "left_padding":
        tok.padding_side = "left"
    if variant == "pad_is_eos":  # as in SmolLM2: the end token must stay labelled, the padding must not
        tok.pad_token = tok.eos_token
    with_feedback = to_training_rows(load_split(str(tree), "demonstrator_commentary", "train"), PROFICIENCY_LABELS)
    label_only = to_training_rows(load_split(str(tree), "demonstrator", "train"), PROFICIENCY_LABELS)
    rows = [with_feedback[0], label_only[0]]
    assert rows[0]["feedback"] and not rows[1]["feedback"]
    batch = ProfVLMCollator(processor, PROFICIENCY_LABELS)(rows)
    assert batch["input_ids"].shape == batch["labels"].shape
    assert int(batch["attention_mask"].sum(1).min()) < batch["input_ids"].shape[1]  # one sample is padded
    for i, row in enumerate(rows):
        real = batch["attention_mask"][i].bool()
        ids, labels = batch["input_ids"][i][real], batch["labels"][i][real]
        assert torch.all(batch["labels"][i][~real] == IGNORE_INDEX)  # padding never labelled
        labelled = (labels != IGNORE_INDEX).nonzero().flatten()
        start, end = int(labelled[0]), int(labelled[-1])
        assert labelled.tolist() == list(range(start, end + 1))  # one contiguous span
        assert torch.equal(labels[start : end + 1], ids[start : end + 1])
        target = format_target(row["label"], row["feedback"] or None)
        assert tok.decode(ids[start : end + 1]) == target + tok.eos_token
        prompt = tok.decode(ids[:start])
        assert prompt.endswith("<|im_start|>assistant\n") and "<video>" in prompt and "<|im_start|>user" in prompt
        assert tok.decode(ids[end + 1 :]) == "\n"  # only the template's trailing newline follows


def prompt_boundary_labels(processor, rows, batch) -> torch.Tensor:
    """The collator's former method, kept here as the reference: render the prompt alone, tokenize it again to find
    where the answer starts, label from there up to and including the first end-of-turn token."""
    from training.sft_data import row_messages

    labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
    for i, row in enumerate(rows):
        messages = row_messages(row, PROFICIENCY_LABELS)
        prompt = processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        prompt_len = len(processor(text=[prompt], return_tensors=None, padding=False)["input_ids"][0])
        positions = batch["attention_mask"][i].nonzero().flatten()
        tokens = batch["input_ids"][i, positions]
        end = int((tokens[prompt_len:] == processor.tokenizer.eos_token_id).nonzero().flatten()[0])
        answer = positions[prompt_len: prompt_len + end + 1]
        labels[i, answer] = batch["input_ids"][i, answer]
    return labels


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_the_template_marked_answer_equals_the_former_prompt_boundary_labels(tiny_checkpoint, tree, padding_side):
    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    processor.tokenizer.padding_side = padding_side
    with_feedback = to_training_rows(load_split(str(tree), "demonstrator_commentary", "train"), PROFICIENCY_LABELS)
    label_only = to_training_rows(load_split(str(tree), "demonstrator", "train"), PROFICIENCY_LABELS)
    rows = [with_feedback[i] for i in range(3)] + [label_only[i] for i in range(2)]
    batch = ProfVLMCollator(processor, PROFICIENCY_LABELS)(rows)
    assert int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert torch.equal(batch["labels"], prompt_boundary_labels(processor, rows, batch))


def _first_batch_loss(checkpoint, tree, output_dir, extra):
    script_args, args = parse_args(["--model", str(checkpoint), "--data_dir", str(tree),
                                    "--output_dir", str(output_dir), "--per_device_train_batch_size", "4",
                                    "--seed", "0", *extra])
    trainer = build_trainer(script_args, args)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()  # no dropout: the two paths must see the same computation
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch)).item()
    return loss, batch, trainer


def test_cpu_training_uses_the_cpu_training_attention(tiny_checkpoint, tree, feature_cache, tmp_path):
    from modeling_profvlm.cpu_attention import CPU_TRAINING_ATTENTION

    script_args, args = parse_args(_common_args(tiny_checkpoint, tree, feature_cache, **{"--output_dir": tmp_path}))
    trainer = build_trainer(script_args, args)
    language_model = trainer.model.get_base_model().model.language_model
    assert args.device.type == "cpu"
    assert language_model.config._attn_implementation == CPU_TRAINING_ATTENTION


def test_cached_features_and_pixels_give_the_same_first_batch_loss(tiny_checkpoint, tree, feature_cache, tmp_path,
                                                                   one_thread):
    pixel_loss, pixel_batch, trainer = _first_batch_loss(tiny_checkpoint, tree, tmp_path / "p", [])
    feature_loss, feature_batch, _ = _first_batch_loss(tiny_checkpoint, tree, tmp_path / "f",
                                                       ["--features", str(feature_cache)])
    assert pixel_batch["take_uids"] == feature_batch["take_uids"]
    assert "pixel_values_videos" in pixel_batch and "video_features" in feature_batch
    assert torch.equal(pixel_batch["input_ids"], feature_batch["input_ids"])
    assert torch.equal(pixel_batch["view_mask"], feature_batch["view_mask"])
    # The cache holds exactly what the model computes from the same pixels ...
    encoder = trainer.model.get_base_model().model
    expected = encoder.encode_views(pixel_batch["pixel_values_videos"], pixel_batch["view_mask"])
    torch.testing.assert_close(feature_batch["video_features"], expected, atol=1e-5, rtol=1e-5)
    # ... so the loss is the same.
    assert abs(pixel_loss - feature_loss) < 1e-4, (pixel_loss, feature_loss)


def _common_args(checkpoint, tree, cache, **overrides):
    args = {"--model": checkpoint, "--data_dir": tree, "--features": cache, "--dataset_config": "demonstrator",
            "--eval_split": "none", "--max_train_samples": 8, "--per_device_train_batch_size": 2, "--seed": 0,
            "--learning_rate": 1e-2, "--logging_steps": 1, "--log_seen_takes": "true", "--report_to": "none"}
    args.update(overrides)
    return [str(x) for kv in args.items() for x in kv]


@pytest.mark.slow
def test_resume_after_sigkill_reaches_the_same_adapter_with_the_same_data_order(tiny_checkpoint, tree, feature_cache,
                                                                                tmp_path, one_thread):
    from training.sft import main

    # 8 rows, batch 2: 4 steps per epoch; 6 steps cross an epoch boundary. Checkpoint every 3 steps.
    common = _common_args(tiny_checkpoint, tree, feature_cache, **{"--max_steps": 6, "--save_strategy": "steps",
                                                                   "--save_steps": 3})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    main([*common, "--output_dir", str(straight)])  # in-process: saves a subprocess start on 2 shared cores

    proc = subprocess.run([sys.executable, "-m", "tests.training_helpers", "kill-after-save", "3", *common,
                           "--output_dir", str(killed)], cwd=REPO_ROOT, env=script_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / "checkpoint-3" / "adapter_model.safetensors").is_file()
    assert not (killed / "checkpoint-6").exists() and not (killed / "final").exists()
    assert [r["step"] for r in read_seen_takes(killed)] == [0, 1, 2]

    main([*common, "--output_dir", str(killed), "--resume_from_checkpoint", "last"])
    assert read_seen_takes(killed) == read_seen_takes(straight)  # same batches, same order, across the epoch
    assert [r["step"] for r in read_seen_takes(straight)] == list(range(6))
    expected, resumed = adapter_weights(straight), adapter_weights(killed)
    assert expected.keys() == resumed.keys() and any("lora_B" in k for k in expected)
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    # Training moved the weights (LoRA B starts at zero), so equality above is not trivially true.
    assert any(expected[k].abs().max() > 0 for k in expected if "lora_B" in k)


@pytest.mark.slow
def test_two_cpu_ranks_train_disjoint_shards_and_only_rank0_writes_the_final_checkpoint(tiny_checkpoint, tree,
                                                                                         feature_cache, tmp_path):
    out = tmp_path / "ddp"
    common = _common_args(tiny_checkpoint, tree, feature_cache, **{"--num_train_epochs": 1, "--save_strategy": "no"})
    proc = run_script([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                       "training/sft.py", *common, "--output_dir", str(out)], ACCELERATE_USE_CPU="1")
    log = proc.stdout + proc.stderr
    seen = {rank: read_seen_takes(out, rank) for rank in (0, 1)}
    takes = {rank: [uid for r in records for uid in r["take_uids"]] for rank, records in seen.items()}
    expected = to_training_rows(load_split(str(tree), "demonstrator", "train"), PROFICIENCY_LABELS, 8)["take_uid"]
    assert len(seen[0]) == len(seen[1]) == 2  # 8 rows / (2 ranks x batch 2)
    assert not set(takes[0]) & set(takes[1]), "the ranks saw overlapping takes"
    assert sorted(takes[0] + takes[1]) == sorted(expected)
    assert "[rank 1]" in log and "Training done" in log
    writers = [line for line in log.splitlines() if "Merged checkpoint written" in line]
    assert len(writers) == 1 and "[rank 0]" in writers[0], writers
    final = out / "final"
    assert (final / "model.safetensors").is_file() and (final / "processor_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_evaluates_each_epoch_and_the_final_checkpoint_is_the_merged_adapter(tiny_checkpoint, tree, feature_cache, tmp_path,
                                                                        one_thread):
    import json

    from peft import PeftModel
    from transformers import AutoModel

    import modeling_profvlm  # noqa: F401  (registers the Auto classes)
    from training.sft import save_final

    out = tmp_path / "run"
    script_args, args = parse_args(_common_args(tiny_checkpoint, tree, feature_cache, **{
        "--num_train_epochs": 2, "--max_train_samples": 4, "--eval_split": "validation", "--max_eval_samples": 2,
        "--save_strategy": "no", "--output_dir": out, "--log_seen_takes": "false"}))
    trainer = build_trainer(script_args, args)
    trainer.train()
    assert [h["epoch"] for h in trainer.state.log_history if "eval_loss" in h] == [1.0, 2.0]  # evaluated each epoch
    save_final(trainer, out, tiny_checkpoint)
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("ProfVLMForConditionalGeneration")
    files = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "modeling_profvlm.py", "processing_profvlm.py", "processor_config.json",
            "chat_template.jinja", "tokenizer.json"} <= files
    assert not any(name.startswith("adapter_") for name in files) and not any(f.endswith(".bin") for f in files)

    merged = AutoModel.from_pretrained(final).eval()
    base = AutoModel.from_pretrained(tiny_checkpoint)
    with_adapter = PeftModel.from_pretrained(base, out / "adapter").eval()
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "video_features", "view_mask")}
    with torch.no_grad():
        expected = with_adapter(**inputs).logits
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(AutoModel.from_pretrained(tiny_checkpoint).eval()(**inputs).logits, expected,
                                  atol=1e-4), "training changed nothing"


def test_max_feedback_words_cuts_the_training_targets(tiny_checkpoint, tree, tmp_path):
    from training.sft import load_datasets

    def feedback_lengths(*extra):
        script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree),
                                        "--output_dir", str(tmp_path), *extra])
        train, _ = load_datasets(script_args, args, list(PROFICIENCY_LABELS), ["ego", "exo1", "exo2", "exo3", "exo4"])
        return [len(text.split()) for text in train["feedback"]]

    default, short = feedback_lengths(), feedback_lengths("--max_feedback_words", "6")
    assert max(default) > 6  # the tree has longer commentary, so the option has something to cut
    assert len(short) == len(default) and 0 < max(short) <= 6


def test_max_moment_words_cuts_each_moments_text_and_keeps_every_marker(tiny_checkpoint, tree, tmp_path):
    from modeling_profvlm.profvlm_facts import parse_moments
    from training.sft import load_datasets, training_facts

    def moments(*extra):
        script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--output_dir",
                                        str(tmp_path), "--dataset_config", "demonstrator_moments", *extra])
        train, _ = load_datasets(script_args, args, list(PROFICIENCY_LABELS), ["ego", "exo1", "exo2", "exo3", "exo4"])
        return [parse_moments(text) for text in train["feedback"]], script_args

    (default, default_args), (short, short_args) = moments(), moments("--max_moment_words", "3")
    assert max(len(m["text"].split()) for row in default for m in row) > 3  # something to cut
    assert [[m["time"] for m in row] for row in short] == [[m["time"] for m in row] for row in default]
    assert all(0 < len(m["text"].split()) <= 3 for row in short for m in row)
    # The final checkpoint records it, so evaluation cuts its references the same way.
    assert training_facts(short_args, None, list(PROFICIENCY_LABELS))["max_moment_words"] == 3
    assert training_facts(default_args, None, list(PROFICIENCY_LABELS))["max_moment_words"] is None


def test_cpu_training_projects_only_the_answer_positions_and_matches_the_full_logits_loss(tiny_checkpoint, tree,
                                                                                          tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils

    _, batch, trainer = _first_batch_loss(tiny_checkpoint, tree, tmp_path, [])
    rows = []
    original = trl_utils._ChunkedLogProbFunction

    class Recording:  # TRL's fused LM head hands its kernel the hidden states it projects through the head
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return original.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Recording)
    inputs = {k: v for k, v in batch.items() if k != "take_uids"}
    with torch.no_grad():
        fused = trainer.compute_loss(trainer.model, dict(inputs)).item()
        full = trainer.model(**inputs).loss.item()  # the model's own loss over the full (B, L, vocab) logits
    answer_positions = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert rows == [answer_positions] and answer_positions < batch["labels"][:, 1:].numel()
    assert abs(fused - full) < 1e-5, (fused, full)


def _hand_weighted_loss(trainer, batch, extra: dict) -> tuple[float, float]:
    """(weighted, plain) answer NLL by hand from the full logits: every answer token's -log p once, plus `extra`
    {mask name: additional count} more times for the tokens of that mask, over the answer tokens' count."""
    masks = ("take_uids", "labels", "label_token_mask", "time_token_mask", "end_token_mask")
    inputs = {k: v for k, v in batch.items() if k not in masks}
    with torch.no_grad():
        logits = trainer.model(**inputs).logits.float()
    targets = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none")
    nll = nll * (targets != IGNORE_INDEX)
    count = (targets != IGNORE_INDEX).sum()
    weighted = nll.sum() + sum(times * (nll * batch[name][:, 1:]).sum() for name, times in extra.items())
    return (weighted / count).item(), (nll.sum() / count).item()


def test_label_loss_weight_counts_the_label_tokens_that_many_times(tiny_checkpoint, tree, tmp_path):
    _, plain, _ = _first_batch_loss(tiny_checkpoint, tree, tmp_path / "plain", [])
    assert "label_token_mask" not in plain  # weight 1 (the default): the batch and the loss are TRL's own
    weighted, batch, trainer = _first_batch_loss(tiny_checkpoint, tree, tmp_path / "w", ["--label_loss_weight", "4"])
    assert "time_token_mask" not in batch
    tok = trainer.processing_class.tokenizer
    by_uid = {row["take_uid"]: row for row in trainer.train_dataset}
    for i, uid in enumerate(batch["take_uids"]):  # exactly the label's tokens, nothing of the prefix or feedback
        assert tok.decode(batch["input_ids"][i][batch["label_token_mask"][i]]).strip() == by_uid[uid]["label"]
    expected, unweighted = _hand_weighted_loss(trainer, batch, {"label_token_mask": 3})
    assert abs(weighted - expected) < 1e-4, (weighted, expected)
    assert weighted > unweighted + 1e-3  # the weight changed the loss


def test_time_loss_weight_counts_the_moment_markers_tokens_that_many_times(tiny_checkpoint, tree, tmp_path):
    weighted, batch, trainer = _first_batch_loss(tiny_checkpoint, tree, tmp_path,
                                                 ["--dataset_config", "demonstrator_moments",
                                                  "--label_loss_weight", "2", "--time_loss_weight", "4"])
    tok = trainer.processing_class.tokenizer
    marked = 0
    for i in range(len(batch["take_uids"])):  # exactly the answer's [m:ss] markers, nothing of their comments
        answer = tok.decode(batch["input_ids"][i][batch["labels"][i] != IGNORE_INDEX])
        markers = re.findall(r"\[\d+:\d\d\]", answer)
        times = tok.decode(batch["input_ids"][i][batch["time_token_mask"][i]])
        assert "".join(times.split()) == "".join(markers), (times, answer)
        assert not (batch["time_token_mask"][i] & batch["label_token_mask"][i]).any()
        marked += len(markers)
    assert marked > 0  # the batch has moments, so the mask had something to find
    expected, unweighted = _hand_weighted_loss(trainer, batch, {"label_token_mask": 1, "time_token_mask": 3})
    assert abs(weighted - expected) < 1e-4, (weighted, expected)
    label_only, _ = _hand_weighted_loss(trainer, batch, {"label_token_mask": 1})
    assert weighted > label_only + 1e-3  # the time weight changed the loss


def test_end_loss_weight_counts_the_end_of_each_answer_with_moments(tiny_checkpoint, tree, tmp_path):
    weighted, batch, trainer = _first_batch_loss(tiny_checkpoint, tree, tmp_path,
                                                 ["--dataset_config", "demonstrator_moments",
                                                  "--time_loss_weight", "2", "--end_loss_weight", "4"])
    tok = trainer.processing_class.tokenizer
    for i in range(len(batch["take_uids"])):  # one token, the answer's end of turn: the token generation stops at
        answer = batch["input_ids"][i][batch["labels"][i] != IGNORE_INDEX]
        marked = batch["input_ids"][i][batch["end_token_mask"][i]]
        assert marked.tolist() == [int(answer[-1])] == [tok.convert_tokens_to_ids("<|im_end|>")], tok.decode(answer)
        assert not (batch["end_token_mask"][i] & batch["time_token_mask"][i]).any()
    expected, _ = _hand_weighted_loss(trainer, batch, {"time_token_mask": 1, "end_token_mask": 3})
    assert abs(weighted - expected) < 1e-4, (weighted, expected)
    times_only, _ = _hand_weighted_loss(trainer, batch, {"time_token_mask": 1})
    assert weighted > times_only + 1e-3  # the end's weight changed the loss


def test_the_end_is_marked_only_in_answers_with_moments():
    from training.collator import end_token_mask

    labels = torch.tensor([[-100, 5, 6, 7, -100], [-100, -100, 8, 9, -100], [-100, 1, -100, -100, -100]])
    assert end_token_mask(labels, [True, False, True]).tolist() == [
        [False, False, False, True, False], [False] * 5, [False, True, False, False, False]]


@pytest.mark.parametrize("option", ["label_loss_weight", "time_loss_weight", "end_loss_weight"])
def test_loss_weights_must_be_positive(option, tiny_checkpoint, tree, tmp_path):
    script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree),
                                    "--output_dir", str(tmp_path), f"--{option}", "0"])
    with pytest.raises(ValueError, match=f"--{option} 0.0: expected a weight > 0"):
        build_trainer(script_args, args)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_training_uses_bf16_autocast_only_where_the_cpu_has_it(native, monkeypatch):
    import training.sft as sft
    from modeling_profvlm import device_policy

    monkeypatch.setattr(sft.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_policy.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: native)
    monkeypatch.delenv("PROFVLM_DTYPE", raising=False)
    _, args = parse_args(["--model", "m", "--data_dir", "d"])
    assert args.use_cpu is True and args.bf16 is native
    _, forced = parse_args(["--model", "m", "--data_dir", "d", "--bf16", "false"])
    assert forced.bf16 is False  # the command line still wins
    monkeypatch.setenv("PROFVLM_DTYPE", "float32")  # the one switch that forces fp32 everywhere, SFT included
    _, from_env = parse_args(["--model", "m", "--data_dir", "d"])
    assert from_env.bf16 is False


def test_views_selects_views_with_a_feature_cache_too(tiny_checkpoint, tree, feature_cache):
    from training.feature_cache import FeatureCache

    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    rows = to_training_rows(load_split(str(tree), "demonstrator", "train", views=["ego", "exo2"]), PROFICIENCY_LABELS, 4)
    batch = ProfVLMCollator(processor, PROFICIENCY_LABELS, features=FeatureCache(feature_cache))(list(rows))
    # the cache holds every view of these takes; the rows name two, and only those may reach the model
    assert batch["view_mask"].tolist() == [[1, 0, 1, 0, 0]] * len(rows)


def test_projector_and_lora_b_learn_at_their_own_rates_and_the_scheduler_scales_every_group(tiny_checkpoint, tree,
                                                                                            feature_cache, tmp_path):
    script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--features",
                                    str(feature_cache), "--output_dir", str(tmp_path), "--learning_rate", "0.002",
                                    "--projector_learning_rate", "0.05", "--lora_b_learning_rate_ratio", "4",
                                    "--weight_decay", "0.01", "--max_steps", "4", "--warmup_steps", "0",
                                    "--lr_scheduler_type", "linear", "--eval_split", "none"])
    trainer = build_trainer(script_args, args)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    group_of = {id(p): group for group in trainer.optimizer.param_groups for p in group["params"]}
    trainable = {name: p for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert len(group_of) == len(trainable) == sum(len(g["params"]) for g in trainer.optimizer.param_groups)
    kinds = {"projector": 0.05, "lora_B": 0.008, "lora_A": 0.002}
    seen = set()
    for name, param in trainable.items():
        kind = next(k for k in kinds if k in name)
        seen.add(kind)
        assert group_of[id(param)]["lr"] == pytest.approx(kinds[kind]), name
        # the weight decay split is Trainer's own: biases and norms never decay
        decays = name in trainer.get_decay_parameter_names(trainer.model)
        assert group_of[id(param)]["weight_decay"] == (0.01 if decays else 0.0), name
    assert seen == set(kinds)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.lr_scheduler.step()  # half-way through a linear decay: every group at half its own rate
    assert sorted({round(g["lr"], 6) for g in trainer.optimizer.param_groups}) == [0.001, 0.004, 0.025]


def test_length_grouped_batches_hold_rows_of_similar_length(tiny_checkpoint, tree, feature_cache, tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--features",
                                    str(feature_cache), "--output_dir", str(tmp_path), "--eval_split", "none",
                                    "--train_sampling_strategy", "group_by_length"])
    trainer = build_trainer(script_args, args)
    rows = trainer.train_dataset
    collator = trainer.data_collator
    # the length column is the rendered chat's characters, row by row
    assert rows["length"] == [len(collator.render(row)[0]) for row in rows]
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    plain_args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--features",
                             str(feature_cache), "--output_dir", str(tmp_path), "--eval_split", "none"])
    assert "length" not in build_trainer(*plain_args).train_dataset.column_names


@pytest.mark.parametrize("option, value, message", [
    ("--projector_learning_rate", "0", "--projector_learning_rate 0.0: expected a number > 0"),
    ("--projector_alignment_learning_rate", "0", "--projector_alignment_learning_rate 0.0: expected a number > 0"),
    ("--lora_b_learning_rate_ratio", "-1", "--lora_b_learning_rate_ratio -1.0: expected a number > 0"),
    ("--projector_alignment_steps", "-5", "--projector_alignment_steps -5: expected 0"),
])
def test_learning_rate_options_refuse_values_that_cannot_train(option, value, message, tiny_checkpoint, tree,
                                                               tmp_path):
    script_args, args = parse_args(["--model", str(tiny_checkpoint), "--data_dir", str(tree),
                                    "--output_dir", str(tmp_path), option, value])
    with pytest.raises(ValueError, match=message):
        build_trainer(script_args, args)
