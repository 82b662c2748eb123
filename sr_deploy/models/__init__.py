"""Core models: architectures (``nn.Module`` only), the descriptor, and weight I/O."""

from sr_deploy.models.descriptor import ModelDescriptor, build_model
from sr_deploy.models.discriminator import Discriminator
from sr_deploy.models.srresnet import SRResNet
from sr_deploy.models.vgg import VGGFeatureExtractor, load_vgg19_weights
from sr_deploy.models.weights import WeightsError, load_weights, read_state, save_weights
from sr_deploy.models.zoo import released_models, resolve_weights

__all__ = [
    "Discriminator",
    "ModelDescriptor",
    "SRResNet",
    "VGGFeatureExtractor",
    "WeightsError",
    "build_model",
    "load_vgg19_weights",
    "load_weights",
    "read_state",
    "released_models",
    "resolve_weights",
    "save_weights",
]
