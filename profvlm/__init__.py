"""ProfVLM's user-facing layer: the `profvlm` command line, the predict report, the model card, Hub upload, the web
app, and the checkpoint tooling that needs both the model and the processor (base checkpoints, offline SmolLM2,
the code export for `trust_remote_code`). Nothing below this package imports it.

Importing it registers ProfVLM with transformers (AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
and the `proficiency-estimation` pipeline task), so an installed package needs no `trust_remote_code`:

    import profvlm
    from transformers import pipeline
    estimator = pipeline("proficiency-estimation", model="org/profvlm")
"""
# The registrations themselves live where the classes do (the model and processing packages register on import);
# this package only makes sure both have run, since the processor's registration is the one users miss.
import modeling_profvlm  # noqa: F401  (AutoConfig, AutoModel, AutoModelForImageTextToText, the pipeline task)
import processing  # noqa: F401  (AutoProcessor)
