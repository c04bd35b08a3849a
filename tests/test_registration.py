"""`import profvlm` registers ProfVLM with transformers: in a fresh interpreter with the package installed, the task
name alone loads the installed pipeline, model and processor, with no `trust_remote_code`."""
import json
import subprocess

from tests.serving_helpers import TINY_MAX_NEW_TOKENS, check_result, write_take


def run_fresh(code: str, cwd, space) -> subprocess.CompletedProcess:
    """`code` in a new process (nothing of this project imported or registered yet), offline, outside the checkout:
    only the installed package can be found. Forked from an interpreter that preloaded torch and transformers only."""
    result = subprocess.run([space.python, "-c", code], cwd=cwd, env=space.env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"fresh run failed:\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-4000:]}"
    return result


def test_import_profvlm_then_the_task_name_loads_the_installed_classes(tiny_checkpoint, hub_space, tmp_path):
    take = write_take(tmp_path / "take", views=("ego", "exo2"))
    result = run_fresh(f"""
import json
import profvlm
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline

model_dir = {str(tiny_checkpoint)!r}
pipe = pipeline("proficiency-estimation", model=model_dir)
for obj in (pipe, pipe.model, pipe.processor, AutoConfig.from_pretrained(model_dir),
            AutoModel.from_pretrained(model_dir), AutoProcessor.from_pretrained(model_dir)):
    module = type(obj).__module__
    assert module.split(".")[0] in ("modeling_profvlm", "processing"), (type(obj), module)
print(json.dumps(pipe({take!r}, max_new_tokens={TINY_MAX_NEW_TOKENS})))
""", tmp_path, hub_space)
    check_result(json.loads(result.stdout.strip().splitlines()[-1]), ("ego", "exo2"))


def test_without_the_import_transformers_asks_for_remote_code(tiny_checkpoint, hub_space, tmp_path):
    """The control: the registration above comes from `import profvlm`, not from somewhere else."""
    result = subprocess.run(
        [hub_space.python, "-c", f"from transformers import pipeline; pipeline('proficiency-estimation', "
                                 f"model={str(tiny_checkpoint)!r})"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=hub_space.env)
    assert result.returncode != 0
    # transformers' own refusal of unregistered custom code, not any other crash
    assert "ValueError: The repository" in result.stderr and "contains custom code" in result.stderr, result.stderr
    assert "trust_remote_code=True" in result.stderr
