"""ProfVLM's user-facing layer: the `profvlm` command line, the predict report, the model card, Hub upload, the web
app, and the checkpoint tooling that needs both the model and the processor (base checkpoints, offline SmolLM2,
the code export for `trust_remote_code`). Nothing below this package imports it."""
