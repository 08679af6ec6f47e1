"""The sampler reproduces the release's 3-step ``denoise`` loop on the tiny oracle model."""

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_ORACLE
from unity_core.model import load_transformer
from unity_core.sampling import sample

TINY = TINY_ORACLE


@pytest.mark.parametrize("task", ["text2all", "video2flow", "flow2video"])
def test_three_step_denoise_matches_the_release(fixtures_dir, task):
    o = load_file(str(fixtures_dir / "oracle" / "unityvideo_tiny_oracle.safetensors"))
    model = load_transformer(fixtures_dir / "oracle" / "unityvideo_tiny_oracle_weights.safetensors", config=TINY)
    kw = dict(context=o["shared.ctx_content"], modality="depth", modality_context=o["shared.ctx_modality.depth"], steps=3)
    if task == "text2all":
        kw.update(rgb_noise=o["shared.noise_rgb"], modality_noise=o["shared.noise_flow"])
    elif task == "video2flow":
        kw.update(rgb_latent=o["shared.x_rgb"], modality_noise=o["shared.noise_flow"])
    else:
        kw.update(modality_latent=o["shared.x_flow.depth"], rgb_noise=o["shared.noise_rgb"])
    with torch.no_grad():
        out = sample(model, task, **kw)
    torch.testing.assert_close(out.rgb_latent, o[f"denoise.{task}.depth.out.rgb"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.modality_latent, o[f"denoise.{task}.depth.out.flow"], atol=1e-5, rtol=1e-5)
    assert out.model_evaluations == 3
    if task == "video2flow":
        assert torch.equal(out.rgb_latent, o["shared.x_rgb"])
    if task == "flow2video":
        assert torch.equal(out.modality_latent, o["shared.x_flow.depth"])
