"""The transformer compiles whole: no graph breaks in the RGB-only, joint and Yume packed forwards
(dual-branch cross-attention selects each token's prompt with ``torch.where`` on the stream mask;
Yume's per-token timesteps are spread by layout, not by ``torch.unique``), ``fullgraph=True``
traces, and ``compile_repeated_blocks`` (CPU inductor) equals eager within 1e-5."""

from __future__ import annotations

import torch

from unity_core.model import UnityVideoConfig, UnityVideoTransformer, get_config
from unity_core.model.yume import packed_forward


def _inputs(channels, text_dim):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, channels, 2, 8, 8, generator=g)
    return x, torch.randn(1, 5, text_dim, generator=g), torch.tensor([700.0])


def test_no_graph_breaks_in_the_three_forwards():
    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config("unityvideo-small").eval()
    cfg = get_config("unityvideo-small")
    cfg.modality_stream, cfg.history_embeddings = False, True
    yume = UnityVideoTransformer.from_config(cfg).eval()
    x, ctx, t = _inputs(16, 384)
    forwards = {
        "rgb": lambda: model(x, t, ctx, return_dict=False),
        "joint": lambda: model(x, t, ctx, x, "depth", ctx, return_dict=False),
        "yume_packed": lambda: packed_forward(yume, x[:, :, :1], x, t, ctx, text_len=8),
    }
    with torch.no_grad():
        for name, fn in forwards.items():
            torch._dynamo.reset()
            explained = torch._dynamo.explain(fn)()
            assert explained.graph_break_count == 0, f"{name}: {[str(b.reason)[:300] for b in explained.break_reasons]}"
            assert explained.graph_count == 1, name
    torch._dynamo.reset()


def test_compile_repeated_blocks_matches_eager_on_cpu_inductor():
    cfg = UnityVideoConfig(dim=64, num_layers=2, num_heads=2, ffn_dim=128, in_channels=8, out_channels=8, text_dim=32)
    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config(cfg).eval()
    with torch.no_grad():
        for p in [model.flow_in.weight, *model.modality_embeddings.values()]:
            p.normal_(0, 0.1)
    x, ctx, t = _inputs(8, 32)
    x = x[..., :4, :4]
    with torch.no_grad():
        ref = model(x, t, ctx, x, "depth", ctx, return_dict=False)
        torch._dynamo.reset()
        whole = torch.compile(model, fullgraph=True, backend="eager")  # the whole forward, one graph
        out = whole(x, t, ctx, x, "depth", ctx, return_dict=False)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
        torch._dynamo.reset()
        model.compile_repeated_blocks(fullgraph=True)  # inductor, every block through one compiled graph
        try:
            out = model(x, t, ctx, x, "depth", ctx, return_dict=False)
        finally:
            torch._dynamo.reset()
    err = max((a - b).abs().max().item() for a, b in zip(out, ref))
    print(f"compile_repeated_blocks (inductor, CPU) vs eager: max abs difference {err:.3g}")
    assert err < 1e-5
