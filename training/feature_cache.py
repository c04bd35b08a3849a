# Frozen-tower feature cache: one safetensors file per take, one (N, D) tensor per present view (N temporal tokens)
# plus the tokens' times, and a manifest that pins the tower (type, config, weights hash), the pooling, N and the
# frame sampling and normalisation, so features made any other way are refused. A checkpoint with clips over the take
# (`clip_seconds`) stores (K x N, D) per view, K = that take's clips (ragged: takes differ), and the manifest records
# the clip settings.
import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dataset_scripts.hashing import sha256_of_json

CACHE_FORMAT = "profvlm-feature-cache"
# Version 2: (N, D) per view and token times (the time axis). Version 1 stored one (D,) vector per view: such a
# cache is read as N = 1 (what it is), and refused for anything else.
CACHE_VERSION = 2
LEGACY_VERSION = 1
MANIFEST_NAME = "manifest.json"
FEATURES_DIR = "features"
# What ProfVLMModel.encode_views does (tower_adapter.pool_tokens), by N.
POOLING_ALL_TOKENS = "mean over all tower tokens"
POOLING_TIME_BINS = "per-time-step mean of the patch tokens, then equal time bins"
_LEGACY_POOLING = "mean over all tower tokens (CLS + T*patches)"  # version 1's wording of the N = 1 pooling
# Manifest keys that decide whether cached features equal what the model would compute from pixels.
COMPATIBILITY_KEYS = ("format", "version", "tower_type", "tower", "sampling", "view_names", "feature_dim", "pooling",
                      "temporal_tokens", "clips")
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


def pooling_spec(temporal_tokens: int) -> dict:
    """How per-view features are pooled from the tower's tokens, as data."""
    method = POOLING_ALL_TOKENS if temporal_tokens == 1 else POOLING_TIME_BINS
    return {"method": method, "temporal_tokens": int(temporal_tokens)}


def clip_spec(config) -> dict | None:
    """A checkpoint's clips over the take as manifest data ({"clip_seconds", "max_clips"}), None without them (one
    clip per view: today's caches, which have no such key)."""
    seconds = getattr(config, "clip_seconds", None)
    if seconds is None:
        return None
    return {"clip_seconds": float(seconds), "max_clips": int(config.max_clips)}


def build_manifest(model, sampling: dict, dtype: torch.dtype, source: str | None = None) -> dict:
    """Everything that determines the cached features of `model` (a ProfVLMForConditionalGeneration); with clips over
    the take (`clip_seconds`) also the clip settings (`clip_spec`), so a cache built with other ones is refused."""
    config = model.config
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "tower_type": config.vision_config.model_type,
        "tower": tower_identity(model.model.vision_tower),
        "sampling": dict(sampling),
        "view_names": list(config.view_names),
        "feature_dim": int(config.vision_config.hidden_size),
        "temporal_tokens": int(config.temporal_tokens),
        "pooling": pooling_spec(config.temporal_tokens),
        "dtype": str(dtype).removeprefix("torch."),
        "source_model": source,
    }
    clips = clip_spec(config)
    if clips is not None:  # absent otherwise: a cache made before clips existed keeps its manifest and fingerprint
        manifest["clips"] = clips
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
    # "clips" counts only where it is set, so the take files of a cache made before clips existed still match.
    part = {k: manifest.get(k) for k in COMPATIBILITY_KEYS + ("dtype",) if k != "clips" or manifest.get(k) is not None}
    return sha256_of_json(part)


def read_manifest(cache_dir: str | Path) -> dict:
    """The cache's manifest.json, a version-1 one read as what it is (N = 1, mean over all tokens; see
    `upgrade_legacy_manifest`); FileNotFoundError / CorruptFeatureCacheError name the file."""
    return upgrade_legacy_manifest(read_raw_manifest(cache_dir))


def upgrade_legacy_manifest(manifest: dict) -> dict:
    """A version-1 manifest (one (D,) vector per view, before the time axis) in version 2's terms: one temporal token
    pooled over all tokens, by its tower's type. `legacy_version` records it (its take files keep the old stamp)."""
    if manifest.get("version") != LEGACY_VERSION:
        return manifest
    if manifest.get("pooling") != _LEGACY_POOLING:
        raise CorruptFeatureCacheError(f"a version-1 feature cache with unknown pooling {manifest.get('pooling')!r}; "
                                       "re-extract it with training/extract_features.py --overwrite.")
    tower_type = ((manifest.get("tower") or {}).get("config") or {}).get("model_type")
    return {**manifest, "version": CACHE_VERSION, "tower_type": tower_type, "temporal_tokens": 1,
            "pooling": pooling_spec(1), "legacy_version": LEGACY_VERSION}


def read_raw_manifest(cache_dir: str | Path) -> dict:
    """manifest.json as written; FileNotFoundError / CorruptFeatureCacheError name the file."""
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no feature-cache manifest. Build the cache with `python training/extract_features.py "
            f"--model MODEL --data_dir ROOT --output_dir {cache_dir}`."
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
            f"Feature cache {cache_dir} was made by a different tower, pooling, temporal_tokens, frame sampling or "
            f"view set than the model being used ({Path(cache_dir) / MANIFEST_NAME}):\n  - " + "\n  - ".join(diffs)
            + "\nRe-extract with `python training/extract_features.py --model MODEL --output_dir NEW_DIR` "
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
               view_names: list[str], fingerprint: str, token_times: dict | None = None) -> Path:
    """Store one take: an (N, D) tensor per present view, keyed by view name (missing views are simply absent), and
    the N tokens' times ({"times": [seconds], "duration": seconds}, with clips over the take also "clips_capped";
    `ProfVLMProcessor.token_times`) when known."""
    if features.ndim != 3 or features.shape[0] != len(view_names) or tuple(view_mask.shape) != (len(view_names),):
        raise ValueError(
            f"take {take_uid}: expected features ({len(view_names)}, N, D) and view_mask ({len(view_names)},), "
            f"got {tuple(features.shape)} and {tuple(view_mask.shape)}."
        )
    tensors = {view: features[i].contiguous().cpu() for i, view in enumerate(view_names) if view_mask[i]}
    metadata = {"take_uid": str(take_uid), "fingerprint": fingerprint, "views": ",".join(tensors)}
    if token_times is not None:
        metadata["token_times"] = json.dumps(token_times)
    path = take_path(cache_dir, take_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read_take(path: str | Path, view_names: list[str], feature_dim: int, fingerprint: str | None = None,
              temporal_tokens: int = 1, legacy: bool = False, max_clips: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
    """Load one take file as float32 features (V, N, D) with zeros for missing views, view_mask (V,) long and the
    tokens' times (None when not stored). `legacy`: a version-1 file, (D,) per view, read as N = 1. `max_clips`: a
    cache of clips over the take, (K x N, D) per view for this take's K (1..max_clips, the same for every view).
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
    problem, times = None, None
    steps = temporal_tokens
    if max_clips is not None and tensors:  # this take's K, from its first view; every view must agree
        rows = next(iter(tensors.values())).shape[0] if next(iter(tensors.values())).ndim == 2 else 0
        if rows % temporal_tokens == 0 and 1 <= rows // temporal_tokens <= max_clips:
            steps = rows
    shape = (feature_dim,) if legacy else (steps, feature_dim)
    unknown = [k for k in keys if k not in view_names]
    if fingerprint is not None and metadata.get("fingerprint") != fingerprint:
        problem = "written for another tower/sampling than this cache's manifest (fingerprint mismatch)"
    elif unknown:
        problem = f"unknown view(s) {unknown}; expected a subset of {list(view_names)}"
    elif not keys:
        problem = "no view features at all"
    else:
        bad = [k for k, t in tensors.items() if tuple(t.shape) != shape or not t.is_floating_point()]
        if bad and max_clips is not None:
            problem = (f"view(s) {bad} are not float tensors of one shape (K x {temporal_tokens}, {feature_dim}) "
                       f"with 1 <= K <= max_clips={max_clips}")
        elif bad:
            problem = f"view(s) {bad} are not float tensors of shape {shape}"
        elif not all(torch.isfinite(t).all() for t in tensors.values()):
            problem = "contains NaN or inf"
        elif "token_times" in metadata:
            try:
                times = json.loads(metadata["token_times"])
                if len(times["times"]) != steps:
                    problem = f"{len(times['times'])} token times for {steps} time steps"
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                problem = f"unreadable token times ({err})"
    if problem:
        raise CorruptFeatureCacheError(f"{path}: corrupt feature-cache file: {problem}. Re-run "
                                       "extract_features.py: it extracts this take again.")
    features = torch.zeros(len(view_names), steps, feature_dim)
    view_mask = torch.zeros(len(view_names), dtype=torch.long)
    for i, view in enumerate(view_names):
        if view in tensors:
            features[i], view_mask[i] = tensors[view].float().reshape(steps, feature_dim), 1
    return features, view_mask, times


class FeatureCache:
    """Read side of a cache directory: checks the manifest against what the model expects, then serves
    (features (V, N, D) float32, or (V, K x N, D) with clips over the take, view_mask (V,)) by take_uid, batches of
    them (`stack`), and the tokens' times (`times_of`). Takes are loaded
    once and kept in memory. A version-1 cache (one (D,) vector per view) is served as N = 1."""

    def __init__(self, cache_dir: str | Path, expected_manifest: dict | None = None):
        self.cache_dir = Path(cache_dir)
        if expected_manifest is not None:
            self.manifest = check_manifest(self.cache_dir, expected_manifest)
        else:
            self.manifest = read_manifest(self.cache_dir)
        self.view_names = list(self.manifest["view_names"])
        self.feature_dim = int(self.manifest["feature_dim"])
        self.temporal_tokens = int(self.manifest.get("temporal_tokens", 1))
        clips = self.manifest.get("clips")
        self.max_clips = None if clips is None else int(clips["max_clips"])  # None: one clip per view
        self.legacy = self.manifest.get("legacy_version") == LEGACY_VERSION
        # Take files carry the fingerprint of the manifest as written (a version-1 one for a legacy cache).
        self.fingerprint = manifest_fingerprint(read_raw_manifest(self.cache_dir) if self.legacy else self.manifest)
        self._loaded: dict[str, tuple[torch.Tensor, torch.Tensor, dict | None]] = {}

    def __contains__(self, take_uid: str) -> bool:
        return take_uid in self._loaded or take_path(self.cache_dir, take_uid).is_file()

    def __getitem__(self, take_uid: str) -> tuple[torch.Tensor, torch.Tensor]:
        if take_uid not in self._loaded:
            path = take_path(self.cache_dir, take_uid)
            if not path.is_file():
                raise KeyError(f"take {take_uid} is not in the feature cache {self.cache_dir} (no {path}); "
                               "run extract_features.py on the same --data_dir to add it.")
            self._loaded[take_uid] = read_take(path, self.view_names, self.feature_dim, self.fingerprint,
                                               self.temporal_tokens, self.legacy, self.max_clips)
        features, mask, _ = self._loaded[take_uid]
        return features, mask

    def features_of(self, take_uid: str, views) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (V, N, D), view_mask (V,)) of a take with only `views` present: a row that uses fewer views
        than were cached (`--views ego`, or a file missing on disk now) sees exactly the views it lists."""
        features, mask = self[take_uid]
        keep = torch.tensor([name in views for name in self.view_names], dtype=mask.dtype)
        return features, mask * keep

    def stack(self, take_uids: list[str], views: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A batch from the cache: (features (B, V, S, D), view_mask (B, V), time_mask) for the takes with only
        their `views` present (`features_of`). One clip per view: S = N and time_mask None. Clips over the take:
        each take's K x N steps padded with zeros to the batch's longest, and time_mask (B, K_max) long, 1 for a
        take's own clips (what `ProfVLMModel.get_video_features` takes)."""
        loaded = [self.features_of(uid, names) for uid, names in zip(take_uids, views)]
        masks = torch.stack([mask for _, mask in loaded])
        if self.max_clips is None:
            return torch.stack([features for features, _ in loaded]), masks, None
        clips = [features.shape[1] // self.temporal_tokens for features, _ in loaded]
        longest = max(clips)
        padded = torch.zeros(len(loaded), len(self.view_names), longest * self.temporal_tokens, self.feature_dim)
        time_mask = torch.zeros(len(loaded), longest, dtype=torch.long)
        for b, ((features, _), k) in enumerate(zip(loaded, clips)):
            padded[b, :, : features.shape[1]] = features
            time_mask[b, :k] = 1
        return padded, masks, time_mask

    def times_of(self, take_uid: str) -> dict | None:
        """The take's token times {"times": [N seconds], "duration": seconds} as extracted, or None (not stored)."""
        self[take_uid]
        return self._loaded[take_uid][2]

    def prompt_kwargs(self, take_uids) -> dict:
        """What ProfVLMProcessor.__call__ needs besides the text to build these takes' prompts from cached features:
        nothing with one temporal token; with N > 1 the tokens' times (`token_times`), which the prompt states."""
        if self.temporal_tokens == 1 and self.max_clips is None:
            return {}
        times = [self.times_of(uid) for uid in take_uids]
        missing = [uid for uid, t in zip(take_uids, times) if t is None]
        if missing:
            raise CorruptFeatureCacheError(f"{self.cache_dir}: take(s) {missing[:3]} have no token times, which "
                                           f"temporal_tokens={self.temporal_tokens} (or clips over the take) "
                                           "prompts need; re-extract them.")
        return {"token_times": times}

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
    "clip_spec",
    "pooling_spec",
    "upgrade_legacy_manifest",
    "read_raw_manifest",
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
