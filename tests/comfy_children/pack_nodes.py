"""Run by tests/test_nodes.py: the V3 contract of every node and the core nodes' figures."""

import importlib

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import latent_preview
import nodes
from comfy.cli_args import LatentPreviewMethod, args

from unity_core.data.synthworld import render_clip


def main(child):
    """Every figure of the test file in one dict (emitted once)."""
    pack, BASE, emit, error_of = child.pack, child.BASE, child.emit, child.error_of
    call_node = child.call_node
    P = importlib.import_module(pack.__name__ + ".nodes")
    host = importlib.import_module(pack.__name__ + ".nodes.host")
    res = {"contract": {}, "errors": {}}

    # the V3 contract, for every node the entry point lists
    for cls in P.NODES:
        schema = cls.define_schema()
        info = cls.GET_NODE_INFO_V1()
        sockets = list(schema.inputs) + list(schema.outputs)
        res["contract"][cls.NODE_ID] = {
            "registered": nodes.NODE_CLASS_MAPPINGS.get(cls.NODE_ID) is cls,
            "display": schema.display_name, "category": schema.category,
            "tooltips": all(bool(getattr(s, "tooltip", None)) for s in sockets),
            "description": bool(schema.description),
            "output_names": len(info["output_name"]) == len(info["output"]),
        }

    # loader: paths that escape the model folders; the embedded default as core MODEL + codec + text encoder
    res["errors"]["escape"] = error_of(host.model_path, "../../etc/passwd")
    res["errors"]["unknown"] = error_of(host.model_path, "nope.safetensors")
    res["choices_first"] = host.model_choices()[0] == host.EMBEDDED
    (model, codec, text), _ = call_node("UnityVideoLoader", checkpoint=host.EMBEDDED, weight_dtype="default")
    fmt = model.model.latent_format
    res["loader"] = {"patcher": isinstance(model, comfy.model_patcher.ModelPatcher),
                     "wrapper": type(model.model).__name__, "format": type(fmt).__name__,
                     "factors": [len(fmt.latent_rgb_factors), len(fmt.latent_rgb_factors[0])],
                     "codec_channels": codec.latent_channels, "text_dim": int(text.encode(["a room"]).shape[-1]),
                     "shift": float(model.get_model_object("model_sampling").shift),
                     "multiplier": float(model.get_model_object("model_sampling").multiplier)}
    (fp8, _, _), _ = call_node("UnityVideoLoader", checkpoint=host.EMBEDDED, weight_dtype="fp8_e4m3fn")
    tf = fp8.model.diffusion_model
    x = torch.randn(1, 16, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    ctx = text.encode(["a room"])

    def x0(mp):
        return mp.model.apply_model(x, torch.tensor([0.6]), c_crossattn=ctx, unityvideo_packed=True,
                                    unityvideo_modality="depth", unityvideo_modality_context=ctx, transformer_options={})

    res["fp8"] = {"linear_dtype": str(tf.blocks[0].attn1.to_q.weight.dtype), "manual_cast": str(fp8.model.manual_cast_dtype),
                  "err_vs_fp32": float((x0(fp8) - x0(model)).abs().max()), "scale": float(x0(model).abs().max())}

    # the default's latent previews: fitted latent2rgb factors against the frames they stand for
    clip = render_clip(999, num_frames=17, height=64, width=64)
    (latent,), _ = call_node("UnityVideoEncode", codec=codec, frames=clip.rgb)
    args.preview_method = LatentPreviewMethod.Latent2RGB  # as the server's --preview-method latent2rgb
    previewer = latent_preview.get_previewer("cpu", fmt)
    z = latent["samples"][0]
    rgb = torch.nn.functional.linear(z[:, 0].movedim(0, -1), previewer.latent_rgb_factors, previewer.latent_rgb_factors_bias)
    first = torch.nn.functional.adaptive_avg_pool2d(clip.rgb[0].permute(2, 0, 1), rgb.shape[:2]).permute(1, 2, 0)
    res["preview"] = {"previewer": type(previewer).__name__,
                      "mean_abs_error": float((((rgb + 1) / 2).clamp(0, 1) - first).abs().mean())}

    # task node: refuses missing inputs with the fix in the message
    pos = [[ctx, {}]]
    lat = {"samples": torch.zeros(1, 16, 2, 8, 8)}
    call = lambda **k: call_node("UnityVideoTask", positive=pos, negative=pos, modality="depth", **k)
    res["errors"]["flow2video"] = error_of(call, task="flow2video", text_encoder=text, rgb_latent=lat)
    res["errors"]["video2flow"] = error_of(call, task="video2flow", text_encoder=text)
    res["errors"]["no_encoder"] = error_of(call, task="video2flow", rgb_latent=lat)
    res["errors"]["shapes"] = error_of(call, task="video2flow", text_encoder=text, rgb_latent={"samples": torch.zeros(1, 16, 8, 8)})
    res["errors"]["split"] = error_of(call_node, "UnityVideoSplit", samples={"samples": torch.zeros(1, 16, 2, 8, 7)})
    (p, n, packed), _ = call(task="video2flow", text_encoder=text, rgb_latent=lat)
    (_, _, joint), _ = call(task="text2all", text_encoder=text, codec=codec, width=64, height=32, length=9, batch_size=2)
    res["task"] = {"packed": list(packed["samples"].shape), "mask_rgb": float(packed["noise_mask"][..., :8].max()),
                   "mask_mod": float(packed["noise_mask"][..., 8:].min()), "cond": sorted(p[0][1]),
                   "neg_cond": sorted(n[0][1]), "joint": list(joint["samples"].shape), "joint_mask": "noise_mask" in joint}

    # core KSampler on the default: the progress bar moves with a preview each step; Cancel stops it
    events = []

    def hook(value, total, preview, node_id=None, stop_at=None):
        events.append([value, total, preview is not None])
        if stop_at is not None and value == stop_at:
            mm.interrupt_current_processing(True)
        mm.throw_exception_if_processing_interrupted()  # what the server's hook does

    ksampler = dict(model=model, seed=1, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple", positive=p,
                    negative=n, latent_image=packed, denoise=1.0)
    comfy.utils.set_progress_bar_global_hook(hook)
    call_node("KSampler", **ksampler)
    res["progress"] = list(events)
    events.clear()
    comfy.utils.set_progress_bar_global_hook(lambda *a, **k: hook(*a, stop_at=2, **k))
    res["cancel"] = {"error": error_of(call_node, "KSampler", **ksampler), "steps": len(events)}
    mm.interrupt_current_processing(False)
    comfy.utils.set_progress_bar_global_hook(None)

    # modality nodes: round trip, an unknown name
    values = {"modality": "depth", "values": torch.rand(5, 16, 16)}
    (vis,), _ = call_node("UnityVideoModalityEncode", values=values, width=16, height=16)
    (decoded, preview), _ = call_node("UnityVideoModalityDecode", frames=vis, modality="depth")
    res["round_trip"] = float((decoded["values"] - values["values"]).abs().max())
    res["errors"]["modality"] = error_of(call_node, "UnityVideoModalityDecode", frames=torch.zeros(1, 4, 4, 3), modality="normals")

    # save nodes stay inside the output folder
    frames = torch.rand(3, 16, 16, 3)
    res["errors"]["save_up"] = error_of(call_node, "UnityVideoSaveVideo", frames=frames, filename_prefix="../escaped", fps=8.0, format="webp")
    res["errors"]["save_abs"] = error_of(call_node, "UnityVideoSaveValues", values=values, filename_prefix="/tmp/abs")
    _, ui = call_node("UnityVideoSaveVideo", frames=frames, filename_prefix="sub/clip", fps=8.0, format="webp")
    image = ui["images"][0]
    res["saved"] = {"subfolder": image["subfolder"], "exists": (BASE / "output" / "sub" / image["filename"]).is_file()}
    emit(res)

