"""Runtime: every backend behind one small interface (:class:`Upscaler`), :func:`load` to get one on
the fastest path here, seam-free tiling for any image size, and image-level upscaling."""

from sr_deploy.backends.base import BackendUnavailable, ShapeLimits, Upscaler
from sr_deploy.runtime.images import upscale_file, upscale_image
from sr_deploy.runtime.load import load, load_selected
from sr_deploy.runtime.select import Selection
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled

__all__ = [
    "BackendUnavailable",
    "Selection",
    "ShapeLimits",
    "Upscaler",
    "load",
    "load_selected",
    "plan_tiles",
    "upscale_file",
    "upscale_image",
    "upscale_tiled",
]
