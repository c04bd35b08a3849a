"""[demonstration] A checkpoint's `time_decimals` (ProfVLMConfig; `profvlm init --time_decimals`): 0 is today's
whole-second `[m:ss]`, 1 writes `[m:ss.d]` in the prompt's token times (the processor takes it from the config) and
in the SFT targets' moments (training.sft_data formats the data's full-precision moments with it)."""
import json
import shutil

import pytest

from modeling_profvlm.configuration_profvlm import ProfVLMConfig
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS
from processing.processing_profvlm import MODEL_FACTS, ProfVLMProcessor, model_facts
from tests.egoexo4d_fixtures import FixtureTake, demonstration_entry, entry, write_tree
from training.sft_data import load_split, to_training_rows

VIEWS = ["ego", "exo1", "exo2", "exo3", "exo4"]


# ---- the config

def test_the_config_records_time_decimals_and_old_configs_mean_whole_seconds():
    assert ProfVLMConfig().time_decimals == 0
    config = ProfVLMConfig(time_decimals=1)
    assert config.time_decimals == 1 and ProfVLMConfig.from_dict(config.to_dict()).time_decimals == 1
    old = ProfVLMConfig().to_dict()
    old.pop("time_decimals")  # a config.json from before the key
    assert ProfVLMConfig.from_dict(old).time_decimals == 0


@pytest.mark.parametrize("bad", [-1, 4, 1.5, True, "1"])
def test_a_bad_time_decimals_is_one_line_naming_the_value(bad):
    with pytest.raises(ValueError) as err:
        ProfVLMConfig(time_decimals=bad)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"ProfVLMConfig.time_decimals is {bad!r}; expected a whole number from 0")


# ---- the processor: the prompt's token times

TIMES = [{"times": [0.56, 7.0, 64.93, 3600.0], "duration": 3725.27}]


def prompt_text(processor) -> str:
    ids = processor(text=processor.build_prompt(), token_times=TIMES)["input_ids"][0]
    return processor.tokenizer.decode(ids)


def test_the_prompt_writes_token_times_with_the_models_decimals(tiny_tokenizer):
    kwargs = dict(tokenizer=tiny_tokenizer, num_frames=8, image_size=32, temporal_tokens=4, frames_per_time_step=2)
    assert "(1:02:05) [0:00]<video> [0:07]<video> [1:04]<video> [1:00:00]<video>" in prompt_text(
        ProfVLMProcessor(**kwargs))  # 0: today's prompt
    assert "(1:02:05.2) [0:00.5]<video> [0:07.0]<video> [1:04.9]<video> [1:00:00.0]<video>" in prompt_text(
        ProfVLMProcessor(**kwargs, time_decimals=1))
    with pytest.raises(ValueError, match="ProfVLMProcessor time_decimals is 7; expected a whole number from 0"):
        ProfVLMProcessor(**kwargs, time_decimals=7)


def test_the_processor_takes_time_decimals_from_the_config(tiny_tokenizer):
    config = ProfVLMConfig(vision_config={"model_type": "timesformer", "num_frames": 8, "image_size": 32,
                                          "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 64, "patch_size": 16},
                           temporal_tokens=4, time_decimals=1)
    assert "time_decimals" in MODEL_FACTS and model_facts(config)["time_decimals"] == 1
    processor = ProfVLMProcessor.from_model_config(config, tiny_tokenizer)
    assert processor.time_decimals == 1 and "[0:07.0]<video>" in prompt_text(processor)


@pytest.fixture(scope="module")
def tenths_checkpoint(tiny_text_dir, tmp_path_factory):
    """`profvlm init --time_decimals 1` of the tiny tower and LM."""
    from profvlm.cli import main

    out = tmp_path_factory.mktemp("tenths") / "ckpt"
    assert main(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir", str(out),
                 "--temporal_tokens", "2", "--time_decimals", "1"]) == 0
    return out


def test_init_stores_time_decimals_for_model_and_processor(tenths_checkpoint, tmp_path):
    assert json.loads((tenths_checkpoint / "config.json").read_text())["time_decimals"] == 1
    assert json.loads((tenths_checkpoint / "processor_config.json").read_text())["time_decimals"] == 1
    assert ProfVLMProcessor.from_pretrained(tenths_checkpoint).time_decimals == 1
    # a processor that writes other times than its model reads is refused at load, in one line
    edited = shutil.copytree(tenths_checkpoint, tmp_path / "edited")
    saved = json.loads((edited / "processor_config.json").read_text())
    (edited / "processor_config.json").write_text(json.dumps({**saved, "time_decimals": 0}))
    with pytest.raises(ValueError, match=r"processor_config.json time_decimals=0 disagrees with the model's "
                                         r"config.json \(time_decimals=1\)"):
        ProfVLMProcessor.from_pretrained(edited)


def test_init_refuses_a_bad_time_decimals_in_one_line(tiny_text_dir, tmp_path, capsys):
    from profvlm.cli import main

    code = main(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir",
                 str(tmp_path / "ckpt"), "--time_decimals", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--time_decimals is 5; expected a whole number from 0" in err[0]
    assert not (tmp_path / "ckpt").exists()  # refused before anything was built


# ---- the SFT targets

@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory):
    demo = {"good_executions": [demonstration_entry(12.96, ["Good footwork"], "6jm95g", "unc_basketball_a")],
            "tips_for_improvement": [demonstration_entry(7.05, ["Keep the elbow in"], "6jm95g", "unc_basketball_a")]}
    takes = [FixtureTake("unc_basketball_a", duration_sec=60.0, demonstration=demo,
                         experts={"6jm95g": [entry(" Nice start", 2.75), entry(" Strong finish", 55.5, 1)]}),
             FixtureTake("unc_basketball_b", experts={"qfbn5o": [entry(" Plain words", 1.0)]})]
    return write_tree(tmp_path_factory.mktemp("demo") / "r", takes)


def test_sft_targets_write_the_moments_with_the_checkpoints_decimals(demo_tree):
    data = load_split(str(demo_tree), "demonstration_moments", "train")
    assert to_training_rows(data, PROFICIENCY_LABELS, time_decimals=1)["feedback"] == [
        "[0:07.0] tip: Keep the elbow in [0:12.9] good: Good footwork"]
    # 0: the feedback the dataset built, exactly
    assert to_training_rows(data, PROFICIENCY_LABELS)["feedback"] == data["feedback"] == [
        "[0:07] tip: Keep the elbow in [0:12] good: Good footwork"]


@pytest.mark.parametrize("config", ["demonstrator_moments", "demonstrator_commentary"])
def test_with_decimals_0_every_target_is_the_built_feedback(demo_tree, config):
    data = load_split(str(demo_tree), config, "train")
    assert to_training_rows(data, PROFICIENCY_LABELS, time_decimals=0)["feedback"] == data["feedback"]
    if config == "demonstrator_moments":  # commentary moments at 1 decimal: no category word, tenths
        assert to_training_rows(data, PROFICIENCY_LABELS, time_decimals=1)["feedback"] == [
            "[0:02.7] Nice start [0:55.5] Strong finish"]


def test_sft_takes_time_decimals_from_the_checkpoint(tenths_checkpoint, demo_tree, tmp_path):
    from training.sft import build_trainer, parse_args

    script_args, args = parse_args(["--model", str(tenths_checkpoint), "--data_dir", str(demo_tree), "--output_dir",
                                    str(tmp_path / "out"), "--dataset_config", "demonstration_moments",
                                    "--eval_split", "none"])
    trainer = build_trainer(script_args, args)
    assert trainer.train_dataset["feedback"] == ["[0:07.0] tip: Keep the elbow in [0:12.9] good: Good footwork"]


def test_the_time_weight_covers_each_moments_time_and_category_word(tenths_checkpoint, demo_tree, tmp_path):
    # the demonstration task scores a (time, category) pair: the weighted span is "[0:07.0] tip:", not the remark
    from training.collator import IGNORE_INDEX
    from training.sft import build_trainer, parse_args

    script_args, args = parse_args(["--model", str(tenths_checkpoint), "--data_dir", str(demo_tree), "--output_dir",
                                    str(tmp_path / "out"), "--dataset_config", "demonstration_moments",
                                    "--eval_split", "none", "--time_loss_weight", "3"])
    batch = next(iter(build_trainer(script_args, args).get_train_dataloader()))
    tok = ProfVLMProcessor.from_pretrained(tenths_checkpoint).tokenizer
    answer = tok.decode(batch["input_ids"][0][batch["labels"][0] != IGNORE_INDEX])
    assert "Feedback: [0:07.0] tip: Keep the elbow in [0:12.9] good: Good footwork" in answer
    weighted = tok.decode(batch["input_ids"][0][batch["time_token_mask"][0]])
    assert "".join(weighted.split()) == "[0:07.0]tip:[0:12.9]good:"
