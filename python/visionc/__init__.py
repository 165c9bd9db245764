"""visionc: vision models on a C core, Hugging Face compatible."""
from ._version import __version__
from ._native import _C

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads
cpu_features = _C.cpu_features
