"""Text, modality and task nodes."""

from __future__ import annotations

from unity_core.constants import MODALITY_PROMPTS, resolve_modality, resolve_task

from .common import MODALITY, MODALITY_INPUT, MODEL, TASK, TASK_CHOICES, conditioning_tensor, make_conditioning


class UnityVideoTextEncode:
    """Encode a prompt with the model's built-in text encoder (the embedded default's MiniLM).
    For the 5B use ComfyUI's CLIPTextEncode with UMT5-XXL instead."""

    CATEGORY = "UnityVideo/conditioning"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model from UnityVideo Loader with a built-in text encoder."}),
            "text": ("STRING", {"multiline": True, "default": "", "tooltip": "Content prompt (or negative prompt)."}),
        }}

    def encode(self, model, text):
        if model.text_encoder is None:
            raise ValueError("this model has no built-in text encoder; use CLIPTextEncode with UMT5-XXL (CLIPLoader type 'wan')")
        return (make_conditioning(model.encode_prompt(text)),)


class UnityVideoModalitySwitch:
    """Pick the auxiliary modality: its learned embedding (the modality switcher) and its fixed
    prompt (the in-context learner's modality prompt)."""

    CATEGORY = "UnityVideo/conditioning"
    RETURN_TYPES = (MODALITY,)
    RETURN_NAMES = ("modality",)
    FUNCTION = "switch"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "The UnityVideo model."}),
            "modality": MODALITY_INPUT,
        }, "optional": {
            "clip": ("CLIP", {"tooltip": "UMT5-XXL for the 5B; leave empty to use the model's built-in encoder."}),
        }}

    def switch(self, model, modality, clip=None):
        name = resolve_modality(modality)
        prompt = MODALITY_PROMPTS[name]
        if clip is not None:
            tokens = clip.tokenize(prompt)
            context = conditioning_tensor(clip.encode_from_tokens_scheduled(tokens))
        elif model.text_encoder is not None:
            context = model.modality_context(name)
        else:
            raise ValueError("connect a CLIP (UMT5-XXL) to encode the modality prompt for this model")
        return ({"name": name, "context": context},)


class UnityVideoTaskSelect:
    """Choose the task: text2all (joint generation), video2flow (estimation) or flow2video
    (controllable generation)."""

    CATEGORY = "UnityVideo/conditioning"
    RETURN_TYPES = (TASK,)
    RETURN_NAMES = ("task",)
    FUNCTION = "select"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"task": (TASK_CHOICES, {"default": "video2flow", "tooltip": "text2all: text -> RGB + modality; video2flow: RGB -> modality; flow2video: modality -> RGB."})}}

    def select(self, task):
        return (resolve_task(task),)
