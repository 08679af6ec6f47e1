"""A Yume-5B walk sampled by ComfyUI's core (skipped without COMFYUI_PATH; see tests/comfy_env.py).

On the tiny random Yume-5B of scripts/make_random_5b.py (--tiny --yume) through UnityVideo Loader,
core's VAELoader and CLIPLoader: UnityVideo Explore samples every segment with core's sampling, so
with its defaults it equals the library's walk (:func:`unity_core.explore.samplers.generate_yume_walk`
through :meth:`~unity_core.pipeline.UnityVideoPipeline.explore`); ``ModelSamplingSD3`` sets the walk's shift;
``EasyCache`` and UnityVideo Block Cache cut DiT work (counted); a LoRA from ``LoraLoaderModelOnly``
changes the walk as weights merged by hand do; the Yume Segment node + core ``KSampler`` sample the
same segment as the library with the same noise.
"""

from __future__ import annotations

import pytest

from tests.comfy_env import check, run_child


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    import sys

    from tests.comfy_env import REPO, comfy_path

    comfy_path()
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    from make_random_5b import make_random_5b

    folder = tmp_path_factory.mktemp("tiny_yume")
    make_random_5b(folder, tiny=True, yume=True, log=lambda *_: None)
    # tests/comfy_children/yume_native.py (its set-up is explore_node.yume_setup)
    return run_child("yume_native", kwargs={"tiny": str(folder)}, timeout=900)


def test_explore_through_core_with_defaults_is_the_library_walk(native):
    f = check(native, "defaults")
    assert f["err"] < 1e-5 and f["prompts"], f
    assert f["steps"] == 4 and f["shift"] == 7.0 and f["sampling"] == "comfyui core", f


def test_model_sampling_sd3_sets_the_walks_shift(native):
    f = check(native, "shift")
    assert f["err_3"] < 1e-5 and f["shift"] == 3.0, f
    assert f["vs_7"] > 1e-3, f


def test_easycache_skips_dit_evaluations_in_a_walk(native):
    f = check(native, "easycache")
    assert f["plain"] == 2 * 8 and f["cached"] < f["plain"], f


def test_block_cache_skips_block_evaluations_in_a_walk(native):
    f = check(native, "block_cache")
    plain, cached = f["plain"], f["cached"]
    assert plain[0] == 2 * 12 and plain[1:] == [24, 24], f  # 2 segments x 12 steps, every block each time
    # per segment (each is one core sampling run): the ranking's 3 forwards (the reference and one
    # per removed block) run each block twice; then the cached block runs on every 2nd evaluation
    # (6 of 12) and the other on all 12: 2 * (2 + 6 + 2 + 12) = 44 block runs instead of 48
    assert cached[0] == 2 * (12 + 3) and sum(cached[1:]) == 44, f


def test_lora_changes_the_walk_as_merged_weights_do(native):
    f = check(native, "lora")
    assert f["vs_merged"] < 1e-5 and f["changed"] > 1e-3, f


def test_segment_node_and_core_ksampler_sample_the_librarys_segment(native):
    f = check(native, "segment_node")
    assert f["err"] < 1e-5 and f["history_kept"] < 1e-5, f
    assert f["latent"][2] == f["n"] + 8 and f["mask"] == [0.0, 1.0], f
