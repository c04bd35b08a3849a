# Frozen-tower feature cache: one safetensors file per take, one (D,) tensor per present view, plus a manifest
# that pins the tower (config + weights hash) and the frame sampling, so features from another tower are refused.
import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

CACHE_FORMAT = "profvlm-feature-cache"
CACHE_VERSION = 1
MANIFEST_NAME = "manifest.json"
FEATURES_DIR = "features"
POOLING = "mean over all tower tokens (CLS + T*patches)"  # what ProfVLMModel.encode_views does
# Manifest keys that decide whether cached features equal what the model would compute from pixels.
COMPATIBILITY_KEYS = ("format", "version", "tower", "sampling", "view_names", "feature_dim", "pooling")
# Config entries that change between saves of the same tower and say nothing about its features.
_VOLATILE_CONFIG_KEYS = {
    "transformers_version", "_name_or_path", "name_or_path", "dtype", "torch_dtype", "architectures",
}
_SAFE_TAKE_UID = re.compile(r"^[A-Za-z0-9._-]+$")


class FeatureCacheError(ValueError):
    """Base class: the feature cache cannot be used as it is; the message says which file and why."""


class StaleFeatureCacheError(FeatureCacheError):
    """The cache was made by another tower, frame sampling or view set than the one asked for."""


class CorruptFeatureCacheError(FeatureCacheError):
    """A cache file cannot be read or holds values of the wrong shape, type or content."""


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the module's parameters and buffers (names, shapes and float32 values, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        # Hash float32 values so the same weights give the same hash whatever dtype they were loaded in.
        values = tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype).contiguous()
        digest.update(f"{name}:{tuple(values.shape)}:{values.dtype}".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def tower_identity(vision_tower: torch.nn.Module) -> dict:
    """The tower's config (without volatile keys) and the hash of its weights."""
    config = {k: v for k, v in vision_tower.config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    # A JSON round trip, so a fresh manifest compares equal to one read back from disk (tuples become lists).
    config = json.loads(json.dumps(config, sort_keys=True, default=str))
    return {"config": config, "weights_sha256": weights_sha256(vision_tower)}


def sampling_spec(processor) -> dict:
    """How the processor turns a video into tower input by default: sampler, frames, size, normalisation."""
    return {
        "sampler": processor.frame_sampler,
        "num_frames": int(processor.num_frames),
        "image_size": int(processor.image_size),
        "image_mean": [float(x) for x in processor.image_mean],
        "image_std": [float(x) for x in processor.image_std],
        "snap_to_keyframes": bool(getattr(processor, "snap_to_keyframes", False)),
    }


def build_manifest(model, sampling: dict, dtype: torch.dtype, source: str | None = None) -> dict:
    """Everything that determines the cached features of `model` (a ProfVLMForConditionalGeneration)."""
    config = model.config
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "tower": tower_identity(model.model.vision_tower),
        "sampling": dict(sampling),
        "view_names": list(config.view_names),
        "feature_dim": int(config.vision_config.hidden_size),
        "pooling": POOLING,
        "dtype": str(dtype).removeprefix("torch."),
        "source_model": source,
    }
    return json.loads(json.dumps(manifest, default=str))


def manifest_differences(found: dict, expected: dict, keys=COMPATIBILITY_KEYS) -> list[str]:
    """Human-readable differences between two manifests on `keys` (empty when compatible)."""
    diffs = []
    for key in keys:
        diffs += _diff(found.get(key), expected.get(key), key)
    return diffs


def _diff(a, b, where: str) -> list[str]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{where}.{k}")]
    return [f"{where}: cache has {_short(a)}, expected {_short(b)}"]


def _short(value, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def manifest_fingerprint(manifest: dict) -> str:
    """sha256 of the compatibility part of a manifest; stamped into every take file."""
    part = {k: manifest.get(k) for k in COMPATIBILITY_KEYS + ("dtype",)}
    return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()


def read_manifest(cache_dir: str | Path) -> dict:
    """The cache's manifest.json; FileNotFoundError / CorruptFeatureCacheError name the file."""
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no feature-cache manifest. Build the cache with `python training/extract_features.py "
            f"--model MODEL --data_dir ROOT --output {cache_dir}`."
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFeatureCacheError(f"{path}: corrupt feature-cache manifest (not valid JSON): {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise CorruptFeatureCacheError(
            f"{path}: not a ProfVLM feature-cache manifest (expected format '{CACHE_FORMAT}')."
        )
    return manifest


def write_manifest(cache_dir: str | Path, manifest: dict) -> Path:
    """Write manifest.json atomically (a reader never sees half a file)."""
    path = Path(cache_dir) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    return path


def check_manifest(cache_dir: str | Path, expected: dict, keys=COMPATIBILITY_KEYS) -> dict:
    """Read the manifest and refuse (StaleFeatureCacheError) a cache made by another tower or sampling."""
    found = read_manifest(cache_dir)
    diffs = manifest_differences(found, expected, keys)
    if diffs:
        raise StaleFeatureCacheError(
            f"Feature cache {cache_dir} was made by a different tower, frame sampling or view set than the model "
            f"being used ({Path(cache_dir) / MANIFEST_NAME}):\n  - " + "\n  - ".join(diffs)
            + "\nRe-extract with `python training/extract_features.py --model MODEL --output NEW_DIR` "
            "(or train from pixels without --features)."
        )
    return found


def take_path(cache_dir: str | Path, take_uid: str) -> Path:
    """Where the features of `take_uid` live: CACHE/features/<take_uid>.safetensors."""
    if not _SAFE_TAKE_UID.match(str(take_uid)):
        raise ValueError(
            f"take_uid {take_uid!r} cannot be a cache file name (expected letters, digits, '.', '_', '-')."
        )
    return Path(cache_dir) / FEATURES_DIR / f"{take_uid}.safetensors"


def write_take(cache_dir: str | Path, take_uid: str, features: torch.Tensor, view_mask: torch.Tensor,
               view_names: list[str], fingerprint: str) -> Path:
    """Store one take: a (D,) tensor per present view, keyed by view name; missing views are simply absent."""
    if features.ndim != 2 or features.shape[0] != len(view_names) or tuple(view_mask.shape) != (len(view_names),):
        raise ValueError(
            f"take {take_uid}: expected features ({len(view_names)}, D) and view_mask ({len(view_names)},), "
            f"got {tuple(features.shape)} and {tuple(view_mask.shape)}."
        )
    tensors = {view: features[i].contiguous().cpu() for i, view in enumerate(view_names) if view_mask[i]}
    metadata = {"take_uid": str(take_uid), "fingerprint": fingerprint, "views": ",".join(tensors)}
    path = take_path(cache_dir, take_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read_take(path: str | Path, view_names: list[str], feature_dim: int, fingerprint: str | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one take file as float32 features (V, D) with zeros for missing views, and view_mask (V,) long.
    Any problem raises CorruptFeatureCacheError naming the file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata, keys = f.metadata() or {}, list(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except FileNotFoundError:
        raise
    except Exception as err:  # safetensors raises several types on truncated or garbled files
        raise CorruptFeatureCacheError(f"{path}: corrupt feature-cache file, cannot be read ({err}). Re-run "
                                       "extract_features.py: it extracts this take again.") from err
    problem = None
    unknown = [k for k in keys if k not in view_names]
    if fingerprint is not None and metadata.get("fingerprint") != fingerprint:
        problem = "written for another tower/sampling than this cache's manifest (fingerprint mismatch)"
    elif unknown:
        problem = f"unknown view(s) {unknown}; expected a subset of {list(view_names)}"
    elif not keys:
        problem = "no view features at all"
    else:
        bad = [k for k, t in tensors.items() if tuple(t.shape) != (feature_dim,) or not t.is_floating_point()]
        if bad:
            problem = f"view(s) {bad} are not float vectors of size {feature_dim}"
        elif not all(torch.isfinite(t).all() for t in tensors.values()):
            problem = "contains NaN or inf"
    if problem:
        raise CorruptFeatureCacheError(f"{path}: corrupt feature-cache file: {problem}. Re-run "
                                       "extract_features.py: it extracts this take again.")
    features = torch.zeros(len(view_names), feature_dim)
    view_mask = torch.zeros(len(view_names), dtype=torch.long)
    for i, view in enumerate(view_names):
        if view in tensors:
            features[i], view_mask[i] = tensors[view].float(), 1
    return features, view_mask


class FeatureCache:
    """Read side of a cache directory: checks the manifest against what the model expects, then serves
    (features (V, D) float32, view_mask (V,)) by take_uid. Takes are loaded once and kept in memory."""

    def __init__(self, cache_dir: str | Path, expected_manifest: dict | None = None):
        self.cache_dir = Path(cache_dir)
        if expected_manifest is not None:
            self.manifest = check_manifest(self.cache_dir, expected_manifest)
        else:
            self.manifest = read_manifest(self.cache_dir)
        self.view_names = list(self.manifest["view_names"])
        self.feature_dim = int(self.manifest["feature_dim"])
        self.fingerprint = manifest_fingerprint(self.manifest)
        self._loaded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __contains__(self, take_uid: str) -> bool:
        return take_uid in self._loaded or take_path(self.cache_dir, take_uid).is_file()

    def __getitem__(self, take_uid: str) -> tuple[torch.Tensor, torch.Tensor]:
        if take_uid not in self._loaded:
            path = take_path(self.cache_dir, take_uid)
            if not path.is_file():
                raise KeyError(f"take {take_uid} is not in the feature cache {self.cache_dir} (no {path}); "
                               "run extract_features.py on the same --data_dir to add it.")
            self._loaded[take_uid] = read_take(path, self.view_names, self.feature_dim, self.fingerprint)
        return self._loaded[take_uid]

    def features_of(self, take_uid: str, views) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (V, D), view_mask (V,)) of a take with only `views` present: a row that uses fewer views than
        were cached (`--views ego`, or a file missing on disk now) sees exactly the views it lists."""
        features, mask = self[take_uid]
        keep = torch.tensor([name in views for name in self.view_names], dtype=mask.dtype)
        return features, mask * keep

    def preload(self, take_uids) -> None:
        """Load (and so validate) every take up front, so a missing or corrupt file fails before training."""
        missing = sorted({uid for uid in take_uids if uid not in self})
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FeatureCacheError(
                f"Feature cache {self.cache_dir} lacks {len(missing)} take(s) of the dataset: {shown}. Run "
                "`python training/extract_features.py` on the same --data_dir (done takes are skipped)."
            )
        for uid in take_uids:
            self[uid]


def _atomic_write(path: Path, write) -> None:
    # Write to a sibling temp file and rename, so an interrupted write (SIGKILL) never leaves a half file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = [
    "FeatureCache",
    "FeatureCacheError",
    "StaleFeatureCacheError",
    "CorruptFeatureCacheError",
    "build_manifest",
    "sampling_spec",
    "check_manifest",
    "read_manifest",
    "write_manifest",
    "manifest_fingerprint",
    "weights_sha256",
    "take_path",
    "write_take",
    "read_take",
]
