# Helpers for the web-app tests: a free port, the app served from a background thread, the browser's availability.
import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# The tests run offline; gradio would otherwise try to report usage.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(demo) -> Iterator[str]:
    """Launch `demo` on 127.0.0.1 at a free port without blocking; yield its URL and close it afterwards."""
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def browser_unavailable() -> str | None:
    """Why the browser test cannot run here (no playwright, no Chromium), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it is in the dev extra)"
    if not (CHROMIUM.is_file() or shutil.which("chromium")):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; `make test` installs it when root)"
    return None


def chromium_path() -> str:
    """The Chromium binary Playwright drives (Debian's package)."""
    return str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")


def write_text_as_video(path: Path) -> Path:
    """A plain text file under a video name: what a visitor uploads by mistake."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("These are my notes about the take, not a video.\n" * 20)
    return path
