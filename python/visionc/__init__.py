"""visionc: vision models on a C core, Hugging Face compatible.

    import visionc
    clf = visionc.pipeline("image-classification", model="google/vit-base-patch16-224")
    clf("cat.jpg", top_k=5)
"""
from ._version import __version__
from ._native import _C
from . import hub, nn, ops, optim
from .image_processing import AutoImageProcessor, set_hub_resolver
from .io import load_state_dict
from .models.auto import AutoBackbone, AutoModel, AutoModelForImageClassification
from .models.convnext import ConvNextConfig, ConvNextForImageClassification, ConvNextModel
from .models.mobilevit import MobileViTConfig, MobileViTForImageClassification, MobileViTModel
from .models.vit import ViTConfig, ViTForImageClassification, ViTModel
from .pipelines import pipeline
from .models.gpt2 import GPT2Config, GPT2LMHeadModel
from .models.vision_encoder_decoder import VisionEncoderDecoderModel
from .tokenization import AutoTokenizer, GPT2Tokenizer
from .trainer import Trainer

# Processors resolve hub ids through the same cache and download path as the models.
set_hub_resolver(hub.resolve_file)

from ._threads import get_num_threads, set_num_threads  # noqa: E402
cpu_features = _C.cpu_features

__all__ = ["hub", "nn", "ops", "optim", "AutoBackbone", "AutoImageProcessor", "AutoModel",
           "AutoModelForImageClassification", "ConvNextConfig", "ConvNextForImageClassification", "ConvNextModel",
           "MobileViTConfig", "MobileViTForImageClassification", "MobileViTModel", "Trainer", "ViTConfig",
           "ViTForImageClassification", "ViTModel", "pipeline", "load_state_dict", "set_num_threads",
           "get_num_threads", "cpu_features", "__version__", "GPT2Config", "GPT2LMHeadModel",
           "VisionEncoderDecoderModel", "AutoTokenizer", "GPT2Tokenizer"]
