# The one sha256 helper of the project: a downloaded file, a set of files (data provenance, checkpoint weights) and a
# JSON-able value (a feature cache's manifest) are hashed here, files in 1 MiB pieces.
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20  # annotation files and weights can be hundreds of MB: read them in 1 MiB pieces


def _update_with_file(digest, path: Path) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def sha256_of_file(path: str | os.PathLike) -> str:
    """The sha256 of one file's bytes (hex), as `sha256sum` prints it."""
    digest = hashlib.sha256()
    _update_with_file(digest, Path(path))
    return digest.hexdigest()


def sha256_of_files(files: Iterable[Path], root: str | os.PathLike) -> str:
    """One sha256 over every file's name (relative to `root`) and bytes, in name order: a renamed, added or edited
    file changes it."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        _update_with_file(digest, path)
        digest.update(b"\0")
    return digest.hexdigest()


def sha256_of_json(value) -> str:
    """The sha256 of `value` as canonical JSON (sorted keys; what JSON cannot hold, as its str)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["sha256_of_file", "sha256_of_files", "sha256_of_json"]
