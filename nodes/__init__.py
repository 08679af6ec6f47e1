"""ComfyUI nodes: thin wrappers over unity_core. Importable without ComfyUI."""

from .codec import UnityVideoDecode, UnityVideoEncode
from .conditioning import UnityVideoModalitySwitch, UnityVideoTaskSelect, UnityVideoTextEncode
from .explore import UnityVideoExplore
from .loaders import UnityVideoLoader, UnityVideoLoadVideo
from .modalities import (UnityVideoEstimate, UnityVideoModalityDecode, UnityVideoModalityEncode, UnityVideoPreprocess,
                         UnityVideoSaveValues, UnityVideoSaveVideo)
from .sampling import UnityVideoEmptyLatent, UnityVideoSampler, UnityVideoYumeOptions

_NODES = [
    (UnityVideoLoader, "UnityVideo Loader"),
    (UnityVideoLoadVideo, "UnityVideo Load Video"),
    (UnityVideoTextEncode, "UnityVideo Text Encode"),
    (UnityVideoModalitySwitch, "UnityVideo Modality"),
    (UnityVideoTaskSelect, "UnityVideo Task"),
    (UnityVideoEmptyLatent, "UnityVideo Empty Latent"),
    (UnityVideoYumeOptions, "UnityVideo Yume Sampler Options"),
    (UnityVideoSampler, "UnityVideo Sampler"),
    (UnityVideoEncode, "UnityVideo Encode (built-in codec)"),
    (UnityVideoDecode, "UnityVideo Decode (built-in codec)"),
    (UnityVideoEstimate, "UnityVideo Estimate"),
    (UnityVideoModalityEncode, "UnityVideo Modality Encode"),
    (UnityVideoModalityDecode, "UnityVideo Modality Decode"),
    (UnityVideoPreprocess, "UnityVideo Control Preprocess"),
    (UnityVideoSaveValues, "UnityVideo Save Values"),
    (UnityVideoSaveVideo, "UnityVideo Save Video"),
    (UnityVideoExplore, "UnityVideo Explore (keyboard walk)"),
]

NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls, _ in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: name for cls, name in _NODES}
