"""World exploration (Yume): keys, scripts and sentences; compressed history packing; long
video generation; the instruction-following scorer and its check on synthworld."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_DIT
from unity_core.explore.actions import CameraAction
from unity_core.explore.history import (
    PAPER_SCHEDULE,
    HistoryPatchEmbedder,
    HistorySchedule,
    derive_patch_embedding,
    kept_frames,
    pack_compressed_history,
    parse_schedule,
    plan_history,
    sequence_length,
)
from unity_core.explore.qcm import (
    action_from_keys,
    action_prompt,
    format_script,
    parse_script,
    segment_prompt,
    speed_sentence,
)

WEB = Path(__file__).resolve().parents[1] / "web"


# ----------------------------------------------------------------------------------------------
# Keys, scripts, sentences
# ----------------------------------------------------------------------------------------------


def test_keys_to_actions():
    assert action_from_keys(["w", "a"]) == CameraAction("W+A", "·")
    assert action_from_keys(["ArrowUp", "ArrowRight", "s", "d"]) == CameraAction("S+D", "↑→")
    assert action_from_keys(["KeyD", "ArrowLeft"]) == CameraAction("D", "←")
    assert action_from_keys([]) == CameraAction()
    for pair in (["w", "s"], ["a", "d"], ["ArrowLeft", "ArrowRight"], ["ArrowUp", "ArrowDown"]):
        with pytest.raises(ValueError, match="opposite keys"):
            action_from_keys(pair)
    with pytest.raises(ValueError, match="unknown key 'q'"):
        action_from_keys(["q"])


def test_script_round_trip():
    script = "W W W+A ← · S+D↓→ < W,→ a+w →↑ ·→ W*3"
    actions = parse_script(script)
    assert len(actions) == 14
    assert actions[2] == CameraAction("W+A", "·") and actions[3] == CameraAction("·", "←")
    assert actions[5] == CameraAction("S+D", "↓→") and actions[6] == CameraAction("·", "←")
    assert actions[7] == CameraAction("W", "→") and actions[8] == CameraAction("W+A", "·")
    assert actions[9] == CameraAction("·", "↑→") and actions[11:] == [CameraAction("W")] * 3
    canonical = format_script(actions)
    assert canonical == "W W W+A ← · S+D↓→ ← W→ W+A ↑→ → W W W"
    assert parse_script(canonical) == actions
    assert parse_script(actions) == actions
    with pytest.raises(ValueError, match="entry 2: bad action 'X'"):
        parse_script("W X")
    with pytest.raises(ValueError, match="entry 2: bad action 'W\\+S': opposite keys W and S"):
        parse_script("W W+S")
    with pytest.raises(ValueError, match="out of place"):
        parse_script("WA")
    with pytest.raises(ValueError, match="repeat count"):
        parse_script("W*0")
    with pytest.raises(ValueError, match="empty"):
        parse_script("  ")


@pytest.mark.parametrize("version,expect", [
    ("v1", "This video depicts a city walk scene with a first-person view (FPV). Person moves forward and left (W+A). Camera turns right (→)."),
    ("v1_5", "First-person perspective. The camera pushes forward and moves to the left (W+A). The camera pans to the right (→)."),
])
def test_sentences_for_both_versions(version, expect):
    assert action_prompt(CameraAction("W+A", "→"), version) == expect
    assert segment_prompt("A room.", CameraAction("W+A", "→"), version) == "A room. " + expect
    no_prefix = action_prompt(CameraAction("W+A", "→"), version, prefix=False)
    assert expect.endswith(no_prefix) and len(no_prefix) < len(expect)


def test_speed_sentence():
    text = action_prompt(CameraAction("W", "·"), "v1", speed={})
    assert "Actual distance moved:4.36973742880153 at 100 meters per second." in text
    assert speed_sentence("v1_5", {"distance": 3.4, "turn": 1, "rotation": 2}).startswith("Actual distance moved:3 at")
    with pytest.raises(ValueError, match="needs"):
        speed_sentence("v1_5", {})
    with pytest.raises(ValueError, match="unknown sentence set"):
        action_prompt(CameraAction(), "v2")


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_js_and_python_parse_scripts_alike():
    scripts = ["W W W+A ← ·", "S+D↓→ < W,→ a+w", "→↑ ·→ W*3 d+s", "W+A+→ ^ v >", "W Wx", "W*0", "W←→", ""]
    code = (
        "import('" + (WEB / "explore" / "explore_logic.js").as_uri() + "').then(m => {"
        f" const out = {json.dumps(scripts)}.map(s => {{ try {{ return m.formatScript(m.parseScript(s)); }}"
        " catch (e) { return 'error: ' + e.message; } });"
        " console.log(JSON.stringify(out)); });"
    )
    proc = subprocess.run(["node", "-e", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    for script, got in zip(scripts, js):
        try:
            expect = format_script(parse_script(script))
        except ValueError as err:
            expect = "error: " + str(err)
            assert got == expect  # same entry blamed, same reason and help
            continue
        assert got == expect


# ----------------------------------------------------------------------------------------------
# Compressed history
# ----------------------------------------------------------------------------------------------


def _conv(dim=32, channels=4):
    torch.manual_seed(0)
    return torch.nn.Conv3d(channels, dim, (1, 2, 2), stride=(1, 2, 2))


def test_derived_patch_embeddings_keep_constant_response():
    base = _conv()
    x = torch.full((1, 4, 2, 32, 32), 0.37) + torch.arange(4.0).view(1, 4, 1, 1, 1)
    ref = base(x)[:, :, :, 0, 0]
    emb = HistoryPatchEmbedder(base)
    for k in (4, 8, 16, 32):
        conv = derive_patch_embedding(base, k)
        assert conv.kernel_size == (1, k, k) and conv.stride == (1, k, k)
        out = conv(x)
        assert out.shape[-2:] == (32 // k, 32 // k)
        torch.testing.assert_close(out[:, :, :, -1, -1], ref, atol=1e-4, rtol=1e-4)
        tok, grid = emb.embed(x[:, :, :, :20, :20], k)  # edge padding keeps the constant response
        assert grid == (2, -(-20 // k), -(-20 // k))
        torch.testing.assert_close(tok[0, 0], ref[0, :, 0], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="multiple"):
        derive_patch_embedding(base, 3)


def test_paper_schedule_plan():
    assert plan_history(1) == [plan_history(1)[0]] and plan_history(1)[0].frames == (0,)
    groups = plan_history(40)
    assert [(len(g.frames), g.kernel) for g in groups] == [(1, 2), (17, 8), (4, 4), (2, 2)]
    assert groups[0].frames == (0,) and groups[-1].frames == (38, 39) and groups[-2].frames == (34, 35, 36, 37)
    assert groups[1].frames == tuple(range(17, 34))
    assert kept_frames(40) == [0, *range(17, 40)]
    assert parse_schedule("2@2,4@4,17@8") == PAPER_SCHEDULE
    small = PAPER_SCHEDULE.fit(8, 8)
    assert small.groups == ((2, 2), (4, 4), (17, 8))
    assert HistorySchedule(((2, 2), (4, 16))).fit(8, 8).groups == ((2, 2), (4, 8))
    for kernel in (3, 64):  # 64 is a power of two, but no patch embedding is derived for it
        with pytest.raises(ValueError, match="must be 2, 4, 8, 16 or 32"):
            HistorySchedule(((2, kernel),))
    with pytest.raises(ValueError, match="count@kernel"):
        parse_schedule("2x2")


@pytest.mark.parametrize("segments", [1, 5, 30])
@pytest.mark.parametrize("latent_hw", [(16, 16), (8, 8)])
def test_packing_shapes_and_rope_indices(segments, latent_hw):
    """Yume's setting: 8 new latent frames per segment; the history after s - 1 segments is the
    start frame plus 8 (s - 1) generated latents."""
    h, w = latent_hw
    frames_per_segment = 8
    emb = HistoryPatchEmbedder(_conv())
    history = torch.randn(2, 4, 1 + frames_per_segment * (segments - 1), h, w)
    new = torch.randn(2, 4, frames_per_segment, h, w)
    schedule = PAPER_SCHEDULE.fit(h, w)
    packed = pack_compressed_history(emb, history, new, schedule)
    kept = kept_frames(history.shape[2], schedule)
    assert len(kept) == min(history.shape[2], 24)
    n = packed.tokens.shape[1]
    assert packed.tokens.shape == (2, n, 32) and packed.positions.shape == (n, 3)
    assert packed.positions.dtype == torch.long
    assert n == sequence_length(history.shape[2], (h, w), frames_per_segment, schedule)
    # the new segment: base patches, last in the sequence, frames right after the kept history
    assert packed.new_grid == (frames_per_segment, h // 2, w // 2)
    assert packed.new_slice.stop == n and packed.new_slice.stop - packed.new_slice.start == frames_per_segment * h * w // 4
    new_t = packed.positions[packed.new_slice, 0]
    assert new_t.unique().tolist() == list(range(len(kept), len(kept) + frames_per_segment))
    # history: consecutive temporal indices 0..kept-1 in token order (oldest first, monotone)
    hist_t = packed.positions[: packed.new_slice.start, 0]
    assert hist_t.unique().tolist() == list(range(len(kept)))
    assert bool((hist_t[1:] >= hist_t[:-1]).all())
    # each group's tokens cover its coarse grid
    for g, sl in zip(packed.groups, packed.token_slices):
        rows = -(-h // g.kernel)
        assert sl.stop - sl.start == len(g.frames) * rows * rows
        assert packed.positions[sl, 1].max().item() == rows - 1
    # the new tokens are exactly the base patch embedding of the new latent
    torch.testing.assert_close(packed.tokens[:, packed.new_slice], emb.embed(new, 2)[0])
    if segments == 30:  # the schedule is full: the sequence no longer grows
        longer = torch.randn(2, 4, history.shape[2] + 40, h, w)
        assert pack_compressed_history(emb, longer, new, schedule).tokens.shape[1] == n


# ----------------------------------------------------------------------------------------------
# Long video
# ----------------------------------------------------------------------------------------------


def _tiny_model(in_channels=4, text_dim=16, seed=0):
    from unity_core.model import UnityVideoTransformer, get_config

    torch.manual_seed(seed)
    cfg = get_config({**TINY_DIT, "dim": 32, "ffn_dim": 64, "in_channels": in_channels, "out_channels": in_channels,
                      "text_dim": text_dim})
    return UnityVideoTransformer.from_config(cfg).eval()


def test_long_video_shapes_determinism_and_history_untouched(monkeypatch):
    import unity_core.explore.samplers as lv

    model = _tiny_model()
    history = torch.randn(1, 4, 3, 8, 8)
    contexts = [torch.randn(1, 5, 16) for _ in range(3)]
    seen = []
    real_pack = lv.pack_compressed_history

    def spy(embedder, hist, latent, schedule, history_is_selected=False):
        seen.append(hist.clone())
        return real_pack(embedder, hist, latent, schedule, history_is_selected)

    monkeypatch.setattr(lv, "pack_compressed_history", spy)
    out = lv.generate_long_video(model, history, contexts, latent_frames_per_segment=2, steps=3, seed=7)
    assert out.latent.shape == (1, 4, 3 + 3 * 2, 8, 8)
    assert torch.equal(out.latent[:, :, :3], history)  # history never integrated or changed
    assert len(out.seconds_per_segment) == 3 and out.history_tokens[0] < out.history_tokens[-1]
    # step 1 of segment 1 sees the history at sigma = 1 (pure noise), later steps ever closer to it
    assert (seen[0] - history).abs().mean() > 0.5
    assert (seen[2] - history).abs().mean() < (seen[1] - history).abs().mean() < (seen[0] - history).abs().mean()
    # segment 2's history holds segment 1's output
    assert seen[3].shape[2] == 5
    monkeypatch.setattr(lv, "pack_compressed_history", real_pack)
    again = lv.generate_long_video(model, history, contexts, latent_frames_per_segment=2, steps=3, seed=7)
    assert torch.equal(again.latent, out.latent)
    other = lv.generate_long_video(model, history, contexts, latent_frames_per_segment=2, steps=3, seed=8)
    assert not torch.allclose(other.latent[:, :, 3:], out.latent[:, :, 3:])
    # the first segment does not depend on later segments (causal)
    short = lv.generate_long_video(model, history, contexts[:1], latent_frames_per_segment=2, steps=3, seed=7)
    assert torch.equal(short.latent, out.latent[:, :, :5])
    with pytest.raises(ValueError, match="negative_context"):
        lv.generate_long_video(model, history, contexts, cfg=3.0)
    with pytest.raises(ValueError, match="channels"):
        lv.generate_long_video(model, torch.randn(1, 5, 2, 8, 8), contexts)


class _StubText:
    """Deterministic prompt embedding (no model download): token rows from a hash of each word."""

    max_length = 24
    dim = 16

    def encode(self, prompts):
        out = torch.zeros(len(prompts), self.max_length, self.dim)
        for i, p in enumerate(prompts):
            for j, word in enumerate(p.split()[: self.max_length]):
                g = torch.Generator().manual_seed(sum(map(ord, word)) * 31 + j)
                out[i, j] = torch.randn(self.dim, generator=g)
        return out


def _tiny_pipe(defaults: dict):
    """The tiny model, a 4-channel codec (8x spatial, 4x temporal) and the stub text encoder, with
    the pipeline config's ``defaults``."""
    from unity_core.codec import LatentCodec
    from unity_core.pipeline import UnityVideoPipeline

    torch.manual_seed(0)
    codec = LatentCodec.from_config(dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                                         temperal_downsample=[False, True, True], latents_mean=[0.0] * 4,
                                         latents_std=[1.0] * 4)).eval()
    return UnityVideoPipeline(_tiny_model(), codec, _StubText(), {"defaults": defaults})


def test_explore_end_to_end_and_continue():
    from unity_core.sampling import SamplingInterrupted

    pipe = _tiny_pipe({"steps": 2, "height": 32, "width": 32, "fps": 8.0})
    image = torch.rand(40, 48, 3)
    res = pipe.explore(image, "W ←", "a room", latent_frames_per_segment=1, seed=3)
    # start image (1 frame) + 2 segments x 1 latent frame x 4 video frames
    assert res.frames.shape == (1 + 2 * 4, 32, 32, 3)
    assert res.segment_frames == [(1, 5), (5, 9)]
    assert res.latent.shape == (1, 4, 2 + 2, 4, 4)  # image + 1 still repeat, then 2 segments
    assert res.prompts[0].startswith("a room ") and "(W)" in res.prompts[0] and "(←)" in res.prompts[1]
    assert float(res.frames.min()) >= 0 and float(res.frames.max()) <= 1
    more = pipe.explore(None, "D", "a room", history=res, latent_frames_per_segment=1, seed=4)
    assert torch.equal(more.latent[:, :, :4], res.latent)
    assert [a.movement for a in more.actions] == ["W", "·", "D"] and more.segment_frames[-1] == (9, 13)
    assert more.frames.shape[0] == 13 and more.new_segments == 1
    with pytest.raises(ValueError, match="entry 1"):
        pipe.explore(image, "W+S", "a room")
    with pytest.raises(SamplingInterrupted):
        pipe.explore(image, "W", should_interrupt=lambda: True, latent_frames_per_segment=1)


def test_walk_settings_come_from_the_call_the_pipeline_and_the_sampler():
    """A walk's settings: the call's, else the pipeline's defaults, else the sampler's; for
    Yume-5B only the defaults the pipeline's own config names (not the library-wide 20 steps)."""
    from unity_core.explore.long_video import walk_settings

    pipe = _tiny_pipe({"steps": 2, "seed": 5, "fps": 12, "height": 32, "width": 32})
    derived = walk_settings(pipe, False, {"cfg": None, "shift": 3})
    assert derived == {"steps": 2, "shift": 3.0, "cfg": 1.0, "latent_frames_per_segment": 1, "sentence_set": "v1",
                       "seed": 5, "fps": 12.0, "image_repeats": 1}
    assert walk_settings(pipe, False, {"latent_frames_per_segment": 3})["image_repeats"] == 3
    yume = walk_settings(pipe, True, {})
    assert (yume["steps"], yume["shift"], yume["latent_frames_per_segment"], yume["image_repeats"]) == (2, 7.0, 8, 4)
    assert yume["sentence_set"] == "v1_5" and yume["seed"] == 5
    assert walk_settings(_tiny_pipe({}), True, {})["steps"] == 4  # pipe.defaults' library-wide 20 is UnityVideo's
    with pytest.raises(ValueError, match="8 latent frames per segment"):
        walk_settings(pipe, True, {"latent_frames_per_segment": 2})
    with pytest.raises(ValueError, match="image_repeats must be >= 0"):
        walk_settings(pipe, False, {"image_repeats": -1})


def test_walk_frees_the_text_encoder_once_its_prompts_are_encoded():
    pipe = _tiny_pipe({"steps": 1, "height": 32, "width": 32})
    pipe.free_text_encoder_after_encoding = True
    first = pipe.explore(torch.rand(32, 32, 3), "W", "a room", latent_frames_per_segment=1, decode=False)
    assert pipe.text_encoder is None
    # the encoded prompts stay cached and serve another walk with the same prompt; a new prompt cannot be encoded
    again = pipe.explore(torch.rand(32, 32, 3), "W", "a room", latent_frames_per_segment=1, decode=False)
    assert again.prompts == first.prompts and again.latent.shape == first.latent.shape
    with pytest.raises(ValueError, match="text encoder was freed"):
        pipe.explore(torch.rand(32, 32, 3), "W", "a garden", latent_frames_per_segment=1, decode=False)


# ----------------------------------------------------------------------------------------------
# Scorer
# ----------------------------------------------------------------------------------------------


def _synthetic_correspondences(yaw, pitch, direction, rng, n=400):
    from unity_core.metrics.camera_motion import default_intrinsics

    K = default_intrinsics(64, 64)
    pts = np.c_[rng.uniform(-6, 6, n), rng.uniform(-3, 1.5, n), rng.uniform(2, 15, n)]  # camera-1 frame
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_cam = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    centre = 0.5 * np.asarray(direction, float)
    pts2 = (pts - centre) @ r_cam  # camera-2 coordinates: R_cam^T (X - C)
    proj = lambda p: (p[:, :2] / p[:, 2:3]) * K[0, 0] + K[:2, 2]  # noqa: E731
    ok = (pts2[:, 2] > 0.5)
    return proj(pts[ok]), proj(pts2[ok]), K


@pytest.mark.parametrize("action", [CameraAction("W+D", "·"), CameraAction("·", "↑←"), CameraAction("A", "→"),
                                    CameraAction("S", "↓"), CameraAction("·", "·")])
def test_estimate_motion_on_exact_correspondences(action):
    from unity_core.metrics.camera_motion import estimate_motion

    rng = np.random.default_rng(1)
    yaw_s, pitch_s = action.rotation_signs()
    p1, p2, K = _synthetic_correspondences(math.radians(10) * yaw_s, math.radians(10) * pitch_s,
                                           action.translation_direction(), rng)
    m = estimate_motion(p1, p2, K)
    assert (m.movement, m.rotation) == (action.movement, action.rotation)
    # a rank-1 information across a random edge direction per point gives the same answer
    normal = rng.normal(size=(len(p1), 2))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    info = 1.9 * normal[:, :, None] * normal[:, None, :] + 0.05 * np.eye(2)
    assert estimate_motion(p1, p2, K, info).action == m.action
    assert m.yaw == pytest.approx(math.radians(10) * yaw_s, abs=1e-3)
    assert m.pitch == pytest.approx(math.radians(10) * pitch_s, abs=1e-3)
    if action.movement != "·":
        np.testing.assert_allclose(m.direction, action.translation_direction(), atol=1e-3)


def test_scorer_recovers_synthworld_ground_truth_actions():
    """The scorer's own check on synthworld clips (seeds outside the training range): with the
    exact flow it must recover almost every action; from the rendered 64 x 64 frames (DIS flow)
    rotation stays near perfect and movement is limited by the flow noise (0.83 overall on these
    three clips, 0.78 on seeds 7001-7016; 0.71 and 0.68 before the tracks' texture information
    was used)."""
    from unity_core.data.synthworld import render_clip
    from unity_core.metrics.camera_motion import merge_scores, score_video

    gt, dis = [], []
    for seed in (7001, 7002, 7003):
        clip = render_clip(seed, num_frames=33, height=64, width=64)
        K = clip.intrinsics.numpy()
        gt.append(score_video(clip.rgb, clip.actions, K=K, flow=clip.flow, flow_valid=clip.flow_valid & (clip.instances == 0)))
        dis.append(score_video(clip.rgb, clip.actions, K=K))
    gt_score, dis_score = merge_scores(gt), merge_scores(dis)
    assert len(gt_score.commanded) == 24
    assert gt_score.overall >= 0.9 and gt_score.rotation == 1.0
    assert dis_score.rotation >= 0.9 and dis_score.overall >= 0.75
    assert 0.0 <= min(dis_score.per_movement.values()) and max(dis_score.per_movement.values()) <= 1.0


def test_long_content_is_shortened_never_the_action_text():
    from unity_core.explore.prompts import fit_content

    class WordTokens(_StubText):
        max_length = 20

        def tokenizer(self, text):
            return {"input_ids": [0] + text.split() + [0]}

    enc = WordTokens()
    action = "Person moves forward (W). Camera turns right (→)."
    content = " ".join(f"w{i}" for i in range(30))
    fitted = fit_content(enc, content, action)
    assert content.startswith(fitted) and len((fitted + " " + action).split()) + 2 == 20
    assert fit_content(enc, "short room", action) == "short room"


def test_scorer_routes_tracking_settings_and_refuses_them_with_a_given_flow():
    from unity_core.data.synthworld import render_clip
    from unity_core.explore.actions import CameraAction
    from unity_core.metrics.camera_motion import estimate_segments

    clip = render_clip(7001, num_frames=5, height=32, width=32, actions=[CameraAction("W", "·")])
    assert len(estimate_segments(clip.rgb, 1, min_gradient=1.0)) == 1  # a track_points setting
    with pytest.raises(ValueError, match="set DIS tracking, which a given flow replaces"):
        estimate_segments(clip.rgb, 1, flow=clip.flow, scale=1)
    with pytest.raises(ValueError, match="divide uint8"):
        estimate_segments((clip.rgb * 255).to(torch.uint8), 1)


def test_one_guidance_helper_serves_the_samplers(monkeypatch):
    """CFG's text batch and mix (sampling.sampler) as generate_long_video uses them: the guided
    walk equals the walk whose velocity is mixed by hand from two unguided forwards."""
    import unity_core.explore.samplers as lv
    from unity_core.sampling.sampler import guidance_context, guidance_mix

    pos, neg = torch.randn(2, 3, 16), torch.randn(1, 5, 16)
    both = guidance_context(pos, neg)
    assert both.shape == (4, 5, 16) and torch.equal(both[:2, :3], pos) and not both[:2, 3:].any()
    assert torch.equal(both[2:], neg.expand(2, -1, -1))
    v = torch.randn(4, 7)
    torch.testing.assert_close(guidance_mix(v, 2, 3.0), v[2:] + 3.0 * (v[:2] - v[2:]))
    assert guidance_mix(None, 2, 3.0) is None
    model = _tiny_model()
    history, ctx, negative = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    guided = lv.generate_long_video(model, history, [ctx], latent_frames_per_segment=1, steps=2, seed=3, cfg=4.0,
                                    negative_context=negative)
    real = lv.history_velocity
    calls = []

    def by_hand(model, embedder, hist, latent, sigma, context, schedule, block_runner):
        b = latent.shape[0] // 2
        v_pos = real(model, embedder, hist[:b], latent[:b], sigma, context[:b], schedule, block_runner)
        v_neg = real(model, embedder, hist[b:], latent[b:], sigma, context[b:], schedule, block_runner)
        calls.append(sigma)
        return torch.cat([v_pos, v_neg])

    monkeypatch.setattr(lv, "history_velocity", by_hand)
    manual = lv.generate_long_video(model, history, [ctx], latent_frames_per_segment=1, steps=2, seed=3, cfg=4.0,
                                    negative_context=negative)
    monkeypatch.setattr(lv, "history_velocity", real)
    assert len(calls) == 2
    torch.testing.assert_close(manual.latent, guided.latent, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(guided.latent, lv.generate_long_video(model, history, [ctx], latent_frames_per_segment=1,
                                                                    steps=2, seed=3).latent)
