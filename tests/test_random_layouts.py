"""Random-weight files in the real layouts (``scripts/make_random_5b.py --tiny``): the library
reads the release's DiT file, ComfyUI's fp8-scaled UMT5 file with its embedded tokenizer, the
Wan2.2 VAE as ComfyUI's single file and as a diffusers folder, and the pipeline folder linking
them; with ``COMFYUI_PATH`` set, ComfyUI's own loaders read the same files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import make_random_5b as mk  # noqa: E402

TE = "comfyui/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"
VAE = "comfyui/models/vae/wan2.2_vae.safetensors"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("random5b") / "tiny"
    mk.make_random_5b(folder, tiny=True, log=lambda *_: None)
    return folder


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def test_full_size_plan_is_the_release_file():
    """The full-size transformer plan is the key manifest, and its size is the release's byte count."""
    manifest = json.loads(mk.MANIFEST_5B.read_text())
    specs = mk.dit_specs(tiny=False)
    assert [[s.name, list(s.shape)] for s in specs] == manifest["keys"]
    head, ordered = mk.safetensors_layout(specs)
    assert len(head) + sum(s.nbytes for s in ordered) == manifest["predicted_bf16_safetensors_bytes"]
    te = mk.umt5_specs(tiny=False, spiece=b"x")
    params = sum(s.nbytes for s in te if s.dtype == torch.float8_e4m3fn) + sum(
        s.nbytes // 2 for s in te if s.dtype == torch.bfloat16)
    assert params == 5_680_910_336  # UMT5-XXL's encoder: 256384 x 4096 embedding + 24 layers


def test_tiny_files_hold_the_real_layouts(tiny_set):
    from unity_core.model import UnityVideoTransformer, get_config
    from unity_core.model.keys import ours_to_official_key

    dit = _header(tiny_set / mk.TRANSFORMER_FILE)
    with torch.device("meta"):
        model = UnityVideoTransformer.from_config(get_config(dict(mk.DIT_TINY)))
    assert {ours_to_official_key(k): list(v.shape) for k, v in model.state_dict().items()} == {
        k: v["shape"] for k, v in dit.items() if k != "__metadata__"}
    assert {v["dtype"] for k, v in dit.items() if k != "__metadata__"} == {"BF16"}

    te = _header(tiny_set / TE)
    weights = [k for k in te if k.endswith(".weight") and te[k]["dtype"] == "F8_E4M3"]
    assert len(weights) == 24 * 7
    assert (te["scaled_fp8"]["dtype"], te["scaled_fp8"]["shape"]) == ("F8_E4M3", [0])
    assert all(te[k[: -len("weight")] + "scale_weight"]["dtype"] == "F32" for k in weights)
    assert te["shared.weight"]["dtype"] == "BF16" and te["spiece_model"]["dtype"] == "U8"
    assert te["encoder.block.23.layer.1.DenseReluDense.wi_1.weight"]["shape"][-1] == 4096  # ComfyUI's T5-XXL test

    vae = _header(tiny_set / VAE)
    assert "decoder.upsamples.0.upsamples.0.residual.2.weight" in vae  # ComfyUI's Wan2.2 VAE test
    assert json.loads((tiny_set / "diffusers/vae/config.json").read_text())["z_dim"] == 48
    assert (tiny_set / "pipeline/transformer.safetensors").is_symlink()


def test_umt5_single_file_dequantises_and_encodes(tiny_set):
    from safetensors import safe_open

    from unity_core.text import UMT5TextEncoder, load_text_encoder

    enc = UMT5TextEncoder.from_single_file(tiny_set / TE, dtype=torch.float32)
    name = "encoder.block.3.layer.1.DenseReluDense.wo"
    with safe_open(str(tiny_set / TE), "pt") as f:
        ref = f.get_tensor(name + ".weight").float() * f.get_tensor(name + ".scale_weight")
    assert torch.equal(enc.model.state_dict()[name + ".weight"], ref)
    assert enc.model.encoder.embed_tokens.weight.data_ptr() == enc.model.shared.weight.data_ptr()

    prompts = ["a person walks in the park", "red car"]
    out = enc.encode(prompts)
    tok = enc.tokenizer(prompts, max_length=512)
    assert out.shape == (2, 512, 4096) and tok["input_ids"][0, int(tok["attention_mask"][0].sum()) - 1] == 1
    with torch.no_grad():  # the trimmed run equals the run over all 512 padded positions
        full = enc.model(**tok).last_hidden_state * tok["attention_mask"][..., None]
    err = (full - out).abs().max().item()
    print(f"trimmed vs padded UMT5 run: max abs {err:.2e} (values up to {full.abs().max():.2f})")
    assert err < 1e-4 * full.abs().max()
    assert (out[1, int(tok["attention_mask"][1].sum()):] == 0).all()
    assert isinstance(load_text_encoder(str(tiny_set / TE)), UMT5TextEncoder)


def test_vae_single_file_equals_diffusers_folder(tiny_set):
    from unity_core.codec import LatentCodec

    a = LatentCodec.from_single_file(tiny_set / VAE)
    b = LatentCodec.from_pretrained(tiny_set / "diffusers/vae")
    assert (a.latent_channels, a.spatial_ratio, a.temporal_ratio) == (48, 16, 4)
    z = torch.randn(1, 48, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        xa, xb = a.decode(z), b.decode(z)
    assert xa.shape == (1, 3, 5, 32, 32)
    err = (xa - xb).abs().max().item()  # the same values, bf16 in the ComfyUI file, fp32 in the folder
    print(f"ComfyUI-file VAE vs diffusers-folder VAE decode: max abs {err:.2e}")
    assert 0 < err < 0.05


def test_pipeline_folder_runs_estimation(tiny_set):
    from unity_core.model import load_transformer
    from unity_core.codec import LatentCodec
    from unity_core.pipeline import UnityVideoPipeline
    pipe = UnityVideoPipeline.from_pretrained(tiny_set / "pipeline", dtype=torch.bfloat16)
    # no config in the file (as the release's): the heads come from its width, and are the ones it was made with
    assert pipe.transformer.unity_config.num_heads == mk.DIT_TINY["num_heads"]
    video = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    ref = pipe.estimate(video, "depth", steps=2, seed=0, num_frames=5, size=(32, 32))
    assert ref.modality_frames.shape == (5, 32, 32, 3) and torch.isfinite(ref.modality_frames).all()

    # the full-size bench's order: DiT and VAE first, then the text encoder, encoded and freed
    freed = UnityVideoPipeline(load_transformer(tiny_set / "pipeline/transformer.safetensors", dtype=torch.bfloat16),
                               LatentCodec.from_pretrained(tiny_set / "pipeline/vae"), pipe.text_encoder, pipe.config)
    freed.encode_prompt("")
    freed.modality_context("depth")
    freed.free_text_encoder()
    assert freed.text_encoder is None
    out = freed.estimate(video, "depth", steps=2, seed=0, num_frames=5, size=(32, 32))
    assert torch.allclose(out.modality_frames, ref.modality_frames, atol=1e-5)
    with pytest.raises(ValueError, match="text encoder was freed"):
        freed.encode_prompt("another prompt")


def test_script_refuses_unsafe_targets(tmp_path, tiny_set):
    with pytest.raises(SystemExit, match="inside the repository"):
        mk.make_random_5b(REPO / "weights_here", tiny=True, log=lambda *_: None)
    (tmp_path / "other.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        mk.make_random_5b(tmp_path, tiny=True, log=lambda *_: None)
    mk.make_random_5b(tmp_path, tiny=True, force=True, log=lambda *_: None)
    assert (tmp_path / "other.txt").read_text() == "keep me"  # --force deletes only the script's own files
    # --resume keeps a complete file and writes a missing one: same seed, same bytes
    keep = (tmp_path / mk.TRANSFORMER_FILE).stat().st_mtime_ns
    (tmp_path / VAE).unlink()
    mk.make_random_5b(tmp_path, tiny=True, resume=True, log=lambda *_: None)
    assert (tmp_path / mk.TRANSFORMER_FILE).stat().st_mtime_ns == keep
    assert (tmp_path / VAE).read_bytes() == (tiny_set / VAE).read_bytes()


def test_broken_files_give_clear_errors(tmp_path, tiny_set):
    from safetensors.torch import save_file

    from unity_core.codec import LatentCodec
    from unity_core.text import UMT5TextEncoder

    save_file({"shared.weight": torch.zeros(4, 8)}, str(tmp_path / "no_tokenizer.safetensors"))
    with pytest.raises(ValueError, match="no embedded tokenizer"):
        UMT5TextEncoder.from_single_file(tmp_path / "no_tokenizer.safetensors")
    with pytest.raises(ValueError, match="not a Wan2.2 VAE file"):
        LatentCodec.from_single_file(tiny_set / TE)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tiny_set / TE).read_bytes()[:-1000])
    with pytest.raises(ValueError, match="truncated"):
        UMT5TextEncoder.from_single_file(cut)


def test_umt5_file_goes_through_the_transformer_loaders_strict_check(tmp_path, tiny_set):
    """The UMT5 file loader reads with the DiT's reader: one error lists missing, unexpected and
    mis-shaped tensors together, an fp8 weight's scale goes with it."""
    from safetensors.torch import load_file, save_file

    from unity_core.model import CheckpointError
    from unity_core.text import UMT5TextEncoder

    sd = load_file(str(tiny_set / TE))
    fp8 = next(k for k, v in sd.items() if v.dtype == torch.float8_e4m3fn and k.endswith(".weight"))
    assert fp8[: -len("weight")] + "scale_weight" in sd
    del sd[fp8]  # its scale_weight is left behind: an orphan, reported as unexpected
    sd["encoder.extra.weight"] = torch.zeros(2)
    sd["encoder.final_layer_norm.weight"] = torch.zeros(3, dtype=torch.bfloat16)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as err:
        UMT5TextEncoder.from_single_file(tmp_path / "bad.safetensors")
    msg = str(err.value)
    assert msg.startswith("bad.safetensors does not match a UMT5 encoder:")
    assert f"missing keys [1]: {fp8}\n" in msg
    assert f"unexpected keys [2]: {fp8[: -len('weight')]}scale_weight, encoder.extra.weight\n" in msg
    assert "mis-shaped [1]: encoder.final_layer_norm.weight: file (3,) vs model (" in msg


def test_comfyui_loaders_read_the_files(tiny_set):
    """ComfyUI's VAELoader / CLIPLoader (type wan) logic on the tiny files, in a subprocess."""
    from tests.comfy_env import comfy_path

    comfy = comfy_path()
    proc = subprocess.run([sys.executable, str(REPO / "bench/full_size_5b.py"), "--weights", str(tiny_set),
                           "--comfy-layouts", str(comfy)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(rec))
    assert rec["vae_keys"]["missing"] == [] and rec["vae_keys"]["unexpected"] == [] and rec["vae_keys"]["file"] == 196
    assert rec["vae_decode_shape"] == [1, 1, 32, 32, 3] and rec["vae_max_abs_diff_vs_library"] < 1e-4
    assert rec["context_shape"] == [1, 512, 4096] and rec["context_finite"]
    assert rec["scaled_fp8"] == "torch.float8_e4m3fn"
    assert rec["library_token_ids_equal"] and rec["prompt_tokens"] > 1
    assert rec["text_max_abs_diff_vs_library"] < 1e-3 * rec["text_max_abs"]


def test_bench_prints_one_json_line(tmp_path):
    """``bench/full_size_5b.py --make-weights DIR --tiny``: the library run end to end, last line JSON."""
    proc = subprocess.run([sys.executable, str(REPO / "bench/full_size_5b.py"), "--make-weights", str(tmp_path / "w"),
                           "--tiny", "--frames", "5"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(rec["seconds"]) == {"text_encoder_load", "text_encoder_encode", "text_encoder_free", "dit_load",
                                   "vae_load", "vae_encode", "vae_decode", "sample"}
    assert rec["latent_shape"] == [1, 48, 2, 2, 2] and rec["output_shape"] == [5, 32, 32, 3]
    assert rec["context_shape"] == [1, 512, 4096] and rec["output_finite"] and rec["peak_rss_gb"] > 0
