# What licences a ProfVLM checkpoint's weights carry: the code, the language model, the video tower and the training
# data each bring their own, and the card's `license` is the most restrictive of them.
import re
from dataclasses import dataclass
from pathlib import Path

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
PRETRAINED_TOWER = "facebook/timesformer-base-finetuned-k600"
EGOEXO4D_LICENSE_LINK = "https://ego4d.dev/request/ego-exo4d"
CODE_LICENSE = "apache-2.0"  # setup.cfg: the repository's code, copied into the checkpoint for trust_remote_code
# Hub ids whose licence is known: (Hub licence id, how the card writes it).
KNOWN_LICENSES = {
    SMOLLM2: ("apache-2.0", "Apache-2.0"),
    PRETRAINED_TOWER: ("cc-by-nc-4.0", "CC-BY-NC-4.0 (non-commercial)"),
    "facebook/timesformer-base-finetuned-k400": ("cc-by-nc-4.0", "CC-BY-NC-4.0 (non-commercial)"),
    # Other tower families, each as its Hub model card states it.
    "MCG-NJU/videomae-base": ("cc-by-nc-4.0", "CC-BY-NC-4.0 (non-commercial)"),
    "MCG-NJU/videomae-large": ("cc-by-nc-4.0", "CC-BY-NC-4.0 (non-commercial)"),
    "facebook/vjepa2-vitg-fpc64-384": ("apache-2.0", "Apache-2.0"),
}
# Least to most restrictive; None = the component adds no licence (random weights, synthetic data). `other` is a
# licence of its own (EgoExo4D's signed licence) or an unknown one: nothing weaker may be claimed over it.
_RANK = {None: 0, "apache-2.0": 1, "mit": 1, "cc-by-4.0": 2, "cc-by-nc-4.0": 3, "other": 4}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class ComponentLicense:
    """One part of the weights (or of what they were trained on) and its licence."""

    component: str
    source: str
    license: str | None  # a Hub licence id, "other", or None when the component adds no licence
    text: str  # how the card's License section writes it
    link: str | None = None
    license_name: str | None = None  # for `other`: the Hub's license_name


def hub_id(source: str | None) -> str | None:
    """`source` when it looks like a Hub model id (org/name) and is not a local folder, else None."""
    if not source or Path(source).expanduser().exists() or not _HUB_ID.match(source):
        return None
    return source


def _known(source: str | None) -> str | None:
    """The known Hub id `source` names: the id itself, or a local folder named like it (a downloaded copy)."""
    if not source:
        return None
    for known in KNOWN_LICENSES:
        if source == known or Path(source).name == known.split("/")[1]:
            return known
    return None


def _unknown(component: str, source: str, where: str) -> ComponentLicense:
    return ComponentLicense(component, source, "other", f"unknown, check {where}", license_name="unknown")


def language_model_license(config) -> ComponentLicense:
    """The language model's licence, from config.language_model_source (SmolLM2 by its sizes when unrecorded)."""
    source = config.language_model_source
    text = config.text_config
    if source is None and (text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (576, 30, 1536):
        source = SMOLLM2  # an older checkpoint without the field; SmolLM2-135M's shape
    known = _known(source)
    if known:
        spdx, written = KNOWN_LICENSES[known]
        return ComponentLicense("Language model", known, spdx, written, f"https://huggingface.co/{known}")
    return _unknown("Language model", source or "not recorded", "the language model's card")


def tower_license(config) -> ComponentLicense:
    """The video tower's licence: none for a random tower, the known one for a known tower, else unknown. A checkpoint
    on EgoExo4D's released features has no tower: its inputs are EgoExo4D data, under EgoExo4D's licence."""
    if getattr(config, "video_feature_source", None) is not None:
        return ComponentLicense("Video features", f"EgoExo4D's released features ({config.video_feature_source}), no "
                                "tower", "other", "EgoExo4D's own licence, signed by each user", EGOEXO4D_LICENSE_LINK,
                                license_name="ego-exo4d-license")
    source = config.vision_tower_source
    if config.vision_tower_random_init:
        return ComponentLicense("Video tower", f"randomly initialised ({source or 'random'})", None,
                                "none (random weights carry no licence)")
    known = _known(source)
    if known:
        spdx, written = KNOWN_LICENSES[known]
        return ComponentLicense("Video tower", known, spdx, written, f"https://huggingface.co/{known}")
    # Never a default licence: a tower whose card we have not read (any family) is `other` until its card is checked.
    family = getattr(config.vision_config, "model_type", "unknown")
    return _unknown("Video tower", f"{source or 'not recorded'} ({family})",
                    "the tower's model card: its weights licence is not recorded here")


def training_data_license(training_data: dict | None) -> ComponentLicense:
    """The training data's terms, from config.training_data (written by training/sft.py)."""
    if not training_data:
        return ComponentLicense("Training data", "not recorded (config.training_data is empty)", "other",
                                "unknown, check the terms of the data this checkpoint was trained on",
                                license_name="unknown")
    name = training_data.get("name", "unnamed dataset")
    if training_data.get("synthetic"):
        return ComponentLicense("Training data", name, None, "none (synthetic data)")
    if training_data.get("kind") == "egoexo4d":
        return ComponentLicense("Training data", name, "other", "EgoExo4D's own licence, signed by each user",
                                EGOEXO4D_LICENSE_LINK, license_name="ego-exo4d-license")
    return ComponentLicense("Training data", name, "other", "the dataset's own terms (not recorded), check them",
                            license_name="unknown")


def component_licenses(config) -> list[ComponentLicense]:
    """Every component's licence: code, language model, video tower, training data."""
    return [ComponentLicense("Code", "ProfVLM (the *.py files in this repository)", CODE_LICENSE, "Apache-2.0"),
            language_model_license(config), tower_license(config), training_data_license(config.training_data)]


def card_license(components: list[ComponentLicense]) -> dict:
    """The card's licence metadata: the most restrictive component's licence; for `other` also license_name and,
    when known, license_link (a linked licence such as EgoExo4D's is named before an unknown one)."""
    strictest = max(components, key=lambda c: _RANK.get(c.license, _RANK["other"]))
    if strictest.license is None:  # nothing restricts (cannot happen while the code is a component)
        return {"license": CODE_LICENSE}
    if strictest.license != "other":
        return {"license": strictest.license}
    others = [c for c in components if c.license == "other"]
    named = next((c for c in others if c.link), others[0])
    return {"license": "other", "license_name": named.license_name or "unknown",
            **({"license_link": named.link} if named.link else {})}


def license_section(components: list[ComponentLicense], metadata: dict) -> str:
    """The card's License section: one line per component, then which licence the card states and why."""
    lines = ["## License", "", "| component | what | licence |", "|---|---|---|"]
    for c in components:
        text = f"[{c.text}]({c.link})" if c.link else c.text
        lines.append(f"| {c.component} | {c.source} | {text} |")
    stated = metadata["license"] if metadata["license"] != "other" else f"other ({metadata['license_name']})"
    lines += ["", f"The card states `{stated}`, the most restrictive of these: whoever uses the weights is bound by "
              "every row above."]
    return "\n".join(lines) + "\n"


__all__ = ["SMOLLM2", "PRETRAINED_TOWER", "EGOEXO4D_LICENSE_LINK", "KNOWN_LICENSES", "ComponentLicense", "hub_id",
           "language_model_license", "tower_license", "training_data_license", "component_licenses", "card_license",
           "license_section"]
