"""Core data: image I/O, MATLAB-compatible resizing, image collections and evaluation pairs."""

from sr_deploy.data.datasets import EvalPair, collect_images, embedded_images, make_eval_pair
from sr_deploy.data.image_io import (
    IMAGE_SUFFIXES,
    ImageReadError,
    list_images,
    read_image,
    to_float_rgb,
    to_uint,
    write_image,
)
from sr_deploy.data.imresize import imresize, modcrop

__all__ = [
    "IMAGE_SUFFIXES",
    "EvalPair",
    "ImageReadError",
    "collect_images",
    "embedded_images",
    "imresize",
    "list_images",
    "make_eval_pair",
    "modcrop",
    "read_image",
    "to_float_rgb",
    "to_uint",
    "write_image",
]
