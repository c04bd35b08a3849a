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
    window_frame_range,
)
from .processing_profvlm import ProfVLMProcessor
from .text_format import CHAT_TEMPLATE, DEFAULT_INSTRUCTION, build_messages, build_prompt
from .video_io import VideoInfo, VideoReadError, frames_to_rgb, keyframes_near, probe_video, read_frames

AutoProcessor.register(ProfVLMConfig, ProfVLMProcessor)

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_INSTRUCTION",
    "FRAME_SAMPLERS",
    "ProfVLMProcessor",
    "SampledIndices",
    "VideoInfo",
    "VideoReadError",
    "build_messages",
    "build_prompt",
    "frames_to_rgb",
    "keyframes_near",
    "probe_video",
    "read_frames",
    "sample_frame_indices",
    "sample_random_window_indices",
    "sample_segment_indices",
    "sample_uniform_indices",
    "snap_to_keyframes",
    "window_frame_range",
]
