"""What goes into ProfVLM: video decoding, frame sampling, the text format and the processor."""
from transformers import AutoProcessor

from modeling_profvlm.configuration_profvlm import ProfVLMConfig

from .frame_sampling import (
    FRAME_SAMPLERS,
    SampledIndices,
    sample_frame_indices,
    sample_random_window_indices,
    sample_segment_indices,
    sample_uniform_indices,
    snap_to_keyframes,
)
from .processing_profvlm import ProfVLMProcessor
from .text_format import (
    CHAT_TEMPLATE,
    build_messages,
    build_prompt,
    format_label_prefix,
    format_target,
    label_continuations,
    parse_output,
)
from .video_io import VideoInfo, VideoReadError, frames_to_rgb, keyframes_near, probe_video, read_frames

AutoProcessor.register(ProfVLMConfig, ProfVLMProcessor)

__all__ = [
    "CHAT_TEMPLATE",
    "FRAME_SAMPLERS",
    "ProfVLMProcessor",
    "SampledIndices",
    "VideoInfo",
    "VideoReadError",
    "build_messages",
    "build_prompt",
    "format_label_prefix",
    "format_target",
    "frames_to_rgb",
    "keyframes_near",
    "label_continuations",
    "parse_output",
    "probe_video",
    "read_frames",
    "sample_frame_indices",
    "sample_random_window_indices",
    "sample_segment_indices",
    "sample_uniform_indices",
    "snap_to_keyframes",
]
