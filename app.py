# Hugging Face Space entry point: the ProfVLM web app for $PROFVLM_MODEL (see space/README.md); `python app.py` locally.
import logging

from profvlm.app import build_app, space_model

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
# Built at import time: Spaces (and `gradio app.py` reload mode) look for a module-level `demo`.
demo = build_app(space_model())

if __name__ == "__main__":
    demo.launch()  # on a Space, GRADIO_SERVER_NAME/GRADIO_SERVER_PORT set the address
