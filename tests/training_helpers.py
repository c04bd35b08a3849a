"""Helpers for the [training] tests: a small synthetic EgoExo4D tree, subprocess runs of the training scripts,
`python -m tests.training_helpers kill-after-save K ARGS...` (sft.py that SIGKILLs itself after checkpoint K) and
`python -m tests.training_helpers kill-after-lines K ARGS...` (`profvlm ARGS` that SIGKILLs itself right after it
wrote its K-th prediction line)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TREE_TAKES = 16  # enough for >= 8 train takes in the demonstrator config


def synthetic_tree(tmp_path_factory, takes: int = TREE_TAKES) -> Path:
    """A tiny synthetic EgoExo4D tree (32 px, 1 s), made once per test session and shared by the modules."""
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

    root = tmp_path_factory.getbasetemp() / f"training_tree_{takes}"
    if not (root / ".complete").is_file():
        generate_synthetic_egoexo4d(root, takes, seed=0, size=32, seconds=1.0, overwrite=True, progress=False)
        (root / ".complete").write_text("ok\n")
    return root


def tiny_feature_cache(tmp_path_factory, checkpoint: Path, tree: Path) -> Path:
    """A float32 feature cache of every take of `tree`, extracted once per session with the CLI."""
    cache = tmp_path_factory.getbasetemp() / "training_feature_cache"
    if not (cache / ".complete").is_file():
        run_script([sys.executable, "training/extract_features.py", "--model", str(checkpoint), "--data_dir", str(tree),
                    "--output_dir", str(cache), "--dtype", "float32"])
        (cache / ".complete").write_text("ok\n")
    return cache


def script_env(**extra: str) -> dict:
    """Environment for a training subprocess: offline, single-threaded math (2 shared cores), the session's Hugging
    Face folders (tests/hub_cache.py), repo importable."""
    from tests.hub_cache import process_env

    pythonpath = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    return process_env(**{"PYTHONPATH": pythonpath, **extra})


def script_python(env: dict) -> str:
    """The `python` for a script's process: this interpreter, forked from a server that imported torch and
    transformers once (tests/preloaded_python.py), so that a process costs ~0.3 s instead of ~6 s on a slow CPU."""
    from tests.preloaded_python import preloaded_python

    return preloaded_python(env)


def run_script(cmd: list[str], timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """Run a command from the repo root (`sys.executable` as argv[0] runs preloaded: `script_python`); on failure
    raise with the tail of its output."""
    env = script_env(**env)
    if cmd[0] == sys.executable:
        cmd = [script_python(env), *cmd[1:]]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{output}")
    return proc


def read_seen_takes(output_dir: Path, rank: int = 0) -> list[dict]:
    """The per-batch {"step", "take_uids"} records written with --log_seen_takes."""
    path = Path(output_dir) / "seen_takes" / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def adapter_weights(output_dir: Path) -> dict:
    """The trained adapter tensors (LoRA + projector) of a finished run."""
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "adapter" / "adapter_model.safetensors"))


def _kill_after_save(step: int, argv: list[str]) -> None:
    """Run training/sft.py's training, SIGKILL this process right after the checkpoint at `step` is written."""
    from transformers import TrainerCallback

    from training.sft import build_trainer, parse_args, resolve_resume

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                os.kill(os.getpid(), signal.SIGKILL)

    script_args, training_args = parse_args(argv)
    trainer = build_trainer(script_args, training_args)
    trainer.add_callback(KillAfterSave())
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    raise SystemExit(f"training finished without reaching the checkpoint at step {step}")


def _kill_after_lines(lines: int, argv: list[str]) -> None:
    """Run `profvlm ARGV`; SIGKILL this process right after its `lines`-th line of predictions is written."""
    import profvlm.batch_predict as batch_predict
    from profvlm.cli import main

    written = 0
    append_line = batch_predict.append_line

    def append_then_maybe_die(handle, record):
        nonlocal written
        append_line(handle, record)
        if Path(handle.name).name.startswith("predictions"):
            written += 1
            if written == lines:
                os.kill(os.getpid(), signal.SIGKILL)

    batch_predict.append_line = append_then_maybe_die
    main(argv)
    raise SystemExit(f"prediction finished without writing {lines} lines")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "kill-after-save":
        _kill_after_save(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) > 2 and sys.argv[1] == "kill-after-lines":
        _kill_after_lines(int(sys.argv[2]), sys.argv[3:])
    else:
        raise SystemExit("usage: python -m tests.training_helpers kill-after-save STEP SFT_ARGS... | "
                         "kill-after-lines LINES PROFVLM_ARGS...")
