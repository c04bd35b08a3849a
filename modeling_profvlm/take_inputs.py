# The one classifier of user inputs: what is a clip, a take (one performance's views) and a batch of takes.
# The pipeline and the processor both call it, so an input means the same thing to each.
import os
from collections.abc import Sequence

ACCEPTED_FORMS = (
    "a take is a dict {view name: source}, a list of sources in view order (None = missing view), or one source "
    "(the first view); a source is a video path, a decoded clip (uint8 array/tensor (T, H, W, 3) or (T, 3, H, W)) "
    "or a list of frames (PIL images or (H, W, 3) arrays); a batch is a list of takes, each a dict or a list"
)


def _is_frame(x) -> bool:
    # One decoded image: a PIL image (duck-typed, PIL stays optional) or an (H, W, C) array/tensor.
    return (hasattr(x, "convert") and hasattr(x, "mode")) or getattr(x, "ndim", None) == 3


def is_clip(x) -> bool:
    """One view's decoded frames: a 4-D array/tensor, a 3-D (T, H, W) gray array, or a non-empty list of frames.
    A lone (H, W, C) image (C = 1, 3 or 4) is not a clip: one picture cannot show how someone moves."""
    ndim = getattr(x, "ndim", None)
    if ndim == 4 and not isinstance(x, (list, tuple)):
        return True
    if ndim == 3 and not isinstance(x, (list, tuple)):
        return x.shape[-1] not in (1, 3, 4)
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_frame(f) for f in x)


def is_source(x) -> bool:
    """One view's input: None (missing), a video path or a decoded clip."""
    return x is None or isinstance(x, (str, os.PathLike)) or is_clip(x)


def _is_listed_view(x) -> bool:
    # Inside a list, a single image is a frame of one clip, never a view of its own (a gray (T, H, W) clip must be
    # given alone or in a dict): otherwise [frame, clip] would be read two ways.
    return is_source(x) and not _is_frame(x)


def is_take(x) -> bool:
    """One take: a dict of views, one source, or a non-empty list of sources (a list of frames is one source)."""
    if isinstance(x, dict) or is_source(x):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_listed_view(v) for v in x)


def _describe(x) -> str:
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)} ({', '.join(sorted({_describe(v) for v in x[:8]}))})"
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__}{tuple(shape) if shape is not None else ''}"


def split_takes(inputs) -> tuple[list, bool]:
    """(takes, batched): one take becomes [take] with batched=False; a list of takes (dicts or lists of sources)
    is returned as it is with batched=True. Anything else, or a mix, is a ValueError listing the accepted forms."""
    if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
        raise ValueError(f"Empty input; expected one take or a list of takes: {ACCEPTED_FORMS}.")
    if is_take(inputs):
        return [inputs], False
    if isinstance(inputs, (list, tuple)):
        containers = [isinstance(t, dict) or (isinstance(t, (list, tuple)) and not is_clip(t) and is_take(t))
                      for t in inputs]
        if all(containers):
            return list(inputs), True
        bad = next(i for i, ok in enumerate(containers) if not ok)
        raise ValueError(f"ambiguous or unsupported input: element {bad} is {_describe(inputs[bad])} in "
                         f"{_describe(inputs)}; expected {ACCEPTED_FORMS}.")
    raise ValueError(f"unsupported input {_describe(inputs)}; expected {ACCEPTED_FORMS}.")


def source_name(src) -> str:
    """A short name for a source in error messages: the path, or the kind of frames."""
    return str(src) if isinstance(src, (str, os.PathLike)) else f"<{type(src).__name__} frames>"


def take_views(take, view_names: Sequence[str], index: int = 0) -> list:
    """One take's sources in `view_names` order, None where a view is missing. Errors name the take index, the
    views and the sources that do not fit."""
    names = list(view_names)
    if isinstance(take, dict):
        unknown = [f"view {k!r}, file '{source_name(v)}'" for k, v in take.items() if k not in names]
        if unknown:
            raise ValueError(f"take {index}: unknown view name {', '.join(unknown)}; expected one of {names}.")
        views = [take.get(name) for name in names]
    elif isinstance(take, (list, tuple)) and not is_clip(take):
        if not all(_is_listed_view(v) for v in take):
            raise ValueError(f"take {index}: {_describe(take)} is not a list of sources; expected {ACCEPTED_FORMS}.")
        if len(take) > len(names):
            extra = [f"view '#{i}', file '{source_name(src)}'" for i, src in enumerate(take) if i >= len(names)]
            raise ValueError(f"take {index}: got {len(take)} views but at most {len(names)} ({names}) are allowed; "
                             f"extra: {extra}.")
        views = list(take) + [None] * (len(names) - len(take))
    elif is_source(take):
        views = [take] + [None] * (len(names) - 1)
    else:
        raise ValueError(f"take {index}: unsupported {_describe(take)}; expected {ACCEPTED_FORMS}.")
    if all(v is None for v in views):
        raise ValueError(f"take {index}: expected at least one of the views {names}, got none.")
    return views


__all__ = ["ACCEPTED_FORMS", "is_clip", "is_source", "is_take", "split_takes", "take_views", "source_name"]
