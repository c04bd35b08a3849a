"""The synthetic label signal survives the offline video tower: a frozen, randomly initialised (tiny) TimeSformer,
mean-pooled over tokens per view exactly as the model does, then a linear probe separates the four labels."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import TimesformerConfig, TimesformerModel

from dataset_scripts.egoexo4d_proficiency import load_egoexo4d_proficiency
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
from modeling_profvlm.configuration_profvlm import TIMESFORMER_TINY_VISION_CONFIG, VIEW_NAMES
from processing.processing_profvlm import ProfVLMProcessor

NUM_TAKES, SIZE, SECONDS, SEED = 96, 32, 1.0, 0


def tower_features(rows, tokenizer) -> np.ndarray:
    """(takes, views, hidden): uniform T frames, shorter side resized + centre crop, mean 0.45 / std 0.225 (the
    processor), through the frozen random tiny tower, mean over all tokens (as ProfVLMModel.get_video_features)."""
    cfg = TIMESFORMER_TINY_VISION_CONFIG
    processor = ProfVLMProcessor(tokenizer=tokenizer, num_frames=cfg["num_frames"], image_size=cfg["image_size"])
    torch.manual_seed(0)
    tower = TimesformerModel(TimesformerConfig(**{k: v for k, v in cfg.items() if k != "model_type"})).eval()
    feats = []
    with torch.inference_mode():
        for i in range(0, len(rows), 8):
            batch = rows[i : i + 8]
            pixels = processor.process_videos([dict(zip(r["view_names"], r["video_paths"])) for r in batch])
            assert bool(pixels["view_mask"].all())
            x = pixels["pixel_values_videos"]  # [B, V, T, 3, S, S]
            hidden = tower(pixel_values=x.flatten(0, 1)).last_hidden_state.mean(1)  # [B*V, D]
            feats.append(hidden.view(x.shape[0], x.shape[1], -1).numpy())
    return np.concatenate(feats)


def probe_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Held-out accuracy of a logistic-regression probe: 5-fold stratified cross-validation over takes."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(probe, features.reshape(len(features), -1), labels, cv=folds).mean())


@pytest.mark.slow
def test_linear_probe_separates_labels_through_random_tiny_tower(tmp_path, tiny_tokenizer):
    root = generate_synthetic_egoexo4d(tmp_path / "egoexo", NUM_TAKES, SEED, SIZE, SECONDS, progress=False)
    rows = [r for split in ("train", "validation") for r in
            load_egoexo4d_proficiency(root, "demonstrator", split, cache_dir=str(tmp_path / "cache"))]
    labels = np.array([r["proficiency"] for r in rows])
    assert len(rows) == NUM_TAKES and np.bincount(labels).min() >= 10  # the real mix still has every class
    features = tower_features(rows, tiny_tokenizer)
    assert features.shape == (NUM_TAKES, len(VIEW_NAMES), TIMESFORMER_TINY_VISION_CONFIG["hidden_size"])

    all_views = probe_accuracy(features, labels)
    per_view = {view: probe_accuracy(features[:, v], labels) for v, view in enumerate(VIEW_NAMES)}
    views = ", ".join(f"{k} {a:.3f}" for k, a in per_view.items())
    print(f"probe accuracy: all views {all_views:.3f}, per view {views}")
    assert all_views >= 0.9
    assert min(per_view.values()) >= 0.7, per_view  # visible from every camera, not just one
    # and it is the video, not chance: shuffled labels fall to roughly the majority rate
    shuffled = probe_accuracy(features, np.random.default_rng(0).permutation(labels))
    assert shuffled < 0.6
