"""Video: upscale the video stream of any file FFmpeg demuxes, keeping everything else (PyAV, extra ``video``).

- :mod:`~sr_deploy.video.probe`: is it a video (by probing), what its stream and first frame say
- :mod:`~sr_deploy.video.colour`: decoded frames <-> the model's float32 RGB, with the source's matrix and range
- :mod:`~sr_deploy.video.options`: codec, quality, preset, pixel format, their defaults and limits
- :mod:`~sr_deploy.video.pipeline`: decode, model and encode overlapped in threads with bounded queues
- :mod:`~sr_deploy.video.segments`: closed-GOP segments, the resume manifest, the final join and remux
- :mod:`~sr_deploy.video.upscale`: :func:`upscale_video`, the whole job for one file
"""

from sr_deploy.video.options import VideoOptions
from sr_deploy.video.probe import VIDEO_SUFFIXES, VideoError, VideoInfo, is_video, probe_video
from sr_deploy.video.upscale import VideoResult, upscale_video

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoInfo", "VideoOptions", "VideoResult", "is_video", "probe_video",
           "upscale_video"]
