"""The trainer learns on synthworld and resumes exactly."""

import pytest
import torch

from unity_core.codec import LatentCodec
from unity_core.model import UnityVideoConfig, UnityVideoTransformer
from tests.conftest import TINY_DIT, TINY_VAE
from unity_core.train.objective import flow_matching_loss
from unity_core.train import LatentData, TrainConfig, Trainer, build_latent_data
from unity_core.train.pool import render_pool



class _HashText:
    """A deterministic stand-in text encoder (prompt hash -> embedding) for speed."""

    dim, max_length = 8, 4

    def encode(self, prompts):
        out = []
        for p in prompts:
            g = torch.Generator().manual_seed(abs(hash(p)) % 2**31)
            out.append(torch.randn(self.max_length, self.dim, generator=g))
        return torch.stack(out)


def _data():
    torch.manual_seed(0)
    pool = render_pool(range(4), num_frames=5, height=16, width=16, log=None)
    codec = LatentCodec.from_config(TINY_VAE).eval()
    return build_latent_data(codec, _HashText(), pool.videos, pool.prompts, log=None)


def _model(seed=0):
    torch.manual_seed(seed)
    return UnityVideoTransformer.from_config(UnityVideoConfig(**{**TINY_DIT, "dim": 32, "ffn_dim": 64, "in_channels": 4,
                                                                 "out_channels": 4, "text_dim": 8}))


def _train_default_script():
    """scripts/train_default.py as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_default.py"
    spec = importlib.util.spec_from_file_location("train_default", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _eval_loss(model, data: LatentData) -> float:
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        total = 0.0
        for task in ("text2all", "video2flow", "flow2video"):
            loss, _ = flow_matching_loss(model, data.rgb, data.modalities["depth"], task, "depth", data.prompts,
                                         data.modality_prompts["depth"].expand(len(data), -1, -1), generator=g)
            total += float(loss)
    return total


def test_loss_decreases_on_synthworld():
    data = _data()
    assert data.rgb.shape == (4, *LatentCodec.from_config(TINY_VAE).latent_shape(5, 16, 16)) and set(data.modalities) == {"depth", "raft", "segmentation", "skeleton", "densepose"}
    model = _model()
    before = _eval_loss(model, data)
    trainer = Trainer(model, data, TrainConfig(batch_size=4, lr=3e-3, warmup_steps=5, seed=1))
    trainer.train(80, log=None)
    after = _eval_loss(model, data)
    assert after < 0.8 * before, (before, after)
    assert trainer.step == 80


def test_resume_equals_an_uninterrupted_run(tmp_path):
    data = _data()
    cfg = TrainConfig(batch_size=2, lr=1e-3, warmup_steps=2, seed=5)
    straight = Trainer(_model(), data, cfg)
    straight.train(6, log=None)

    first = Trainer(_model(), data, cfg)
    first.train(3, log=None)
    ckpt = first.save(tmp_path / "ckpt.safetensors")
    second = Trainer(_model(seed=99), data, cfg)  # different init: everything must come from the file
    second.resume(ckpt)
    second.train(3, log=None)
    for (n, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert all(torch.equal(straight.ema[k], second.ema[k]) for k in straight.ema)
    assert second.step == 6


def test_latent_data_cache_round_trips(tmp_path):
    data = _data()
    back = LatentData.load(data.save(tmp_path / "latents.safetensors"))
    assert torch.equal(back.rgb, data.rgb) and torch.equal(back.prompts, data.prompts)
    assert torch.equal(back.empty_prompt, data.empty_prompt)
    assert back.modalities.keys() == data.modalities.keys()
    assert all(torch.equal(back.modalities[m], data.modalities[m]) for m in data.modalities)
    assert all(torch.equal(back.modality_prompts[m], data.modality_prompts[m]) for m in data.modality_prompts)


def test_pool_clips_hold_one_action_and_prompt_names_it():
    from unity_core.constants import YUME_QCM

    pool = render_pool(range(2), num_frames=9, height=16, width=16, log=None)
    for prompt in pool.prompts:
        assert YUME_QCM["v1"]["prefix"] in prompt
        movement = [s for s in YUME_QCM["v1"]["movement"].values() if s in prompt]
        assert len(movement) == 1, prompt  # one held action -> one movement sentence


def test_finetune_a_pipeline_folder_on_a_release_csv_with_accelerate(tmp_path):
    """scripts/train_default.py --init FOLDER --csv DATA.csv --accelerate: the fine-tuning path
    (here on CPU, one process) writes a transformer that loads strictly and differs from the start."""
    import json

    from unity_core.data.csv_dataset import export_synthworld
    from unity_core.model import load_transformer
    from unity_core.pipeline import make_random_default

    train_default = _train_default_script()
    start = make_random_default(tmp_path / "start")
    earlier = {"steps": 7, "train_seconds": 4.0, "threads": 1, "lr": 3e-4}  # the start folder's own record
    (start / "training.json").write_text(json.dumps(earlier))
    csv_path = export_synthworld(tmp_path / "data", range(2), num_frames=5, height=16, width=16,
                                 modalities=["depth", "segmentation"])
    out = tmp_path / "tuned"
    train_default.main(["--init", str(start), "--csv", str(csv_path), "--frames", "5", "--size", "16x16",
                        "--modalities", "depth", "segmentation", "--steps", "3", "--batch", "2", "--accelerate",
                        "--device", "cpu", "--out", str(out)])
    report = json.loads((out / "training.json").read_text())
    assert report["steps"] == 3 and report["clips"] == 2 and set(report["modality_weights"]) == {"depth", "segmentation"}
    assert report["initialised_from"] == str(start) and report["earlier_runs"] == [earlier]  # --init carries the record
    assert report["train_seconds_total"] == pytest.approx(report["train_seconds"] + 4.0, abs=0.11)
    before = load_transformer(start / "transformer.safetensors")
    after = load_transformer(out / "transformer.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))

    # a second phase resumed from the first carries the first phase's settings and compute
    common = ["--init", str(start), "--csv", str(csv_path), "--frames", "5", "--size", "16x16", "--batch", "2",
              "--device", "cpu", "--resume", str(out / "trainer_checkpoint.safetensors")]
    with pytest.raises(SystemExit):  # the from-scratch initialisation cannot apply to a resumed run
        train_default.main(common + ["--modality-embedding-std", "1", "--out", str(tmp_path / "bad")])
    train_default.main(common + ["--steps", "2", "--lr", "1e-4", "--task-weights", "video2flow=1",
                                 "--out", str(tmp_path / "phase2")])
    phase2 = json.loads((tmp_path / "phase2" / "training.json").read_text())
    assert phase2["steps"] == 5 and phase2["lr"] == 1e-4
    assert phase2["earlier_runs"] == [earlier, {k: report[k] for k in ("steps", "train_seconds", "threads", "lr",
                                                              "modality_embedding_std", "task_weights",
                                                              "modality_weights")}]
    assert phase2["train_seconds_total"] == pytest.approx(phase2["train_seconds"] + report["train_seconds_total"], abs=0.11)


def test_rgb_only_task_trains_the_plain_forward():
    """``text2video`` supervises RGB alone and never builds modality tokens: the modality
    patch embedding gets no gradient, and the loss equals that of the plain (Wan) forward."""
    from unity_core.train.objective import RGB_ONLY_TASK

    data, model = _data(), _model()
    g = torch.Generator().manual_seed(5)
    t = torch.full((len(data),), 0.4)
    loss, info = flow_matching_loss(model, data.rgb, data.modalities["depth"], RGB_ONLY_TASK, "depth", data.prompts,
                                    None, generator=g, t=t)
    assert set(info) == {"t", "loss_rgb"}
    loss.backward()
    assert model.flow_patch_embedding.weight.grad is None and model.patch_embedding.weight.grad is not None
    noise = torch.randn(data.rgb.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        v, v_mod = model((1 - 0.4) * data.rgb + 0.4 * noise, torch.full((len(data),), 400.0), data.prompts, return_dict=False)
    assert v_mod is None
    assert torch.allclose(loss.detach(), ((v - (noise - data.rgb)) ** 2).mean(), rtol=1e-5)
    trainer = Trainer(model, data, TrainConfig(batch_size=2, seed=1, task_weights={RGB_ONLY_TASK: 1.0, "video2flow": 1.0}))
    assert {h["task"] for h in trainer.train(6, log=None)} <= {RGB_ONLY_TASK, "video2flow"}


def test_explore_segment_task_supervises_the_last_segment_of_walk_clips(tmp_path):
    """``explore_segment`` trains what ``explore()`` samples: a walk clip noised to one t, the
    loss on its last latent frame only, prompted with the new action alone."""
    from unity_core.train.objective import EXPLORE_TASK
    from unity_core.train import add_walks
    from unity_core.train.pool import render_walks

    data, model = _data(), _model()
    codec = LatentCodec.from_config(TINY_VAE).eval()
    with pytest.raises(ValueError, match="render_walks"):
        Trainer(model, data, TrainConfig(batch_size=2, task_weights={EXPLORE_TASK: 1.0}))
    with pytest.raises(ValueError, match="frame count"):
        add_walks(data, codec, _HashText(), *render_walks(range(300000, 300002), num_frames=9, height=16, width=16, log=None))
    rgb, prompts = render_walks(range(300000, 300004), num_frames=9, height=16, width=16, log=None)
    assert rgb.shape == (4, 9, 16, 16, 3) and rgb.dtype == torch.uint8
    assert all(p.count("Person ") == 1 and p.count("Camera ") == 1 for p in prompts)  # the new action only
    rgb5, prompts5 = render_walks(range(300000, 300004), num_frames=5, height=16, width=16, log=None)
    add_walks(data, codec, _HashText(), rgb5, prompts5)
    assert data.walk_rgb.shape == (4, *data.rgb.shape[1:])

    t = torch.full((4,), 0.6)
    loss, info = flow_matching_loss(model, data.walk_rgb, data.modalities["depth"], EXPLORE_TASK, "depth",
                                    data.walk_prompts, None, generator=torch.Generator().manual_seed(2), t=t)
    assert set(info) == {"t", "loss_rgb"}
    noise = torch.randn(data.walk_rgb.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        v, _ = model(0.4 * data.walk_rgb + 0.6 * noise, torch.full((4,), 600.0), data.walk_prompts, return_dict=False)
    err = (v - (noise - data.walk_rgb)) ** 2
    assert torch.allclose(loss.detach(), err[:, :, -1:].mean(), rtol=1e-5)
    assert not torch.allclose(loss.detach(), err.mean(), rtol=1e-3)

    data.save(tmp_path / "lat.safetensors")
    again = LatentData.load(tmp_path / "lat.safetensors")
    assert torch.equal(again.walk_rgb, data.walk_rgb) and torch.equal(again.walk_prompts, data.walk_prompts)
    trainer = Trainer(model, again, TrainConfig(batch_size=2, seed=3, task_weights={EXPLORE_TASK: 1.0, "video2flow": 1.0}))
    tasks = [h["task"] for h in trainer.train(8, log=None)]
    assert EXPLORE_TASK in tasks and set(tasks) <= {EXPLORE_TASK, "video2flow"}


def test_resume_a_from_scratch_run_from_a_latent_cache(tmp_path):
    """The shipped default's second phase: ``--latents CACHE --resume CKPT`` with no ``--init``
    (the from-scratch initialisation is skipped, the checkpoint holds every weight)."""
    import json

    train_default = _train_default_script()
    g = torch.Generator().manual_seed(0)
    lat = lambda *s: torch.randn(*s, generator=g)  # noqa: E731  (unityvideo-small: 16 channels, MiniLM 384)
    LatentData(lat(2, 16, 2, 4, 4), {"depth": lat(2, 16, 2, 4, 4)}, lat(2, 4, 384), {"depth": lat(1, 4, 384)},
               lat(1, 4, 384)).save(tmp_path / "lat.safetensors")
    common = ["--latents", str(tmp_path / "lat.safetensors"), "--batch", "2", "--device", "cpu", "--steps", "1",
              "--modalities", "depth"]
    train_default.main(common + ["--out", str(tmp_path / "one")])
    train_default.main(common + ["--resume", str(tmp_path / "one" / "trainer_checkpoint.safetensors"),
                                 "--out", str(tmp_path / "two")])
    report = json.loads((tmp_path / "two" / "training.json").read_text())
    assert report["steps"] == 2 and report["earlier_runs"][0]["modality_embedding_std"] == 1.0


def test_train_default_patch_size_shapes_a_new_transformer(tmp_path):
    """``--patch-size 1 4 4`` (for a 4x codec, 16 pixels a token as the 8x codec with 1 2 2):
    the saved transformer carries that patch in its config and the record names it."""
    import json

    from unity_core.model import load_transformer

    train_default = _train_default_script()
    g = torch.Generator().manual_seed(0)
    lat = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    LatentData(lat(2, 16, 2, 8, 8), {"depth": lat(2, 16, 2, 8, 8)}, lat(2, 4, 384), {"depth": lat(1, 4, 384)},
               lat(1, 4, 384)).save(tmp_path / "lat.safetensors")
    train_default.main(["--latents", str(tmp_path / "lat.safetensors"), "--batch", "2", "--device", "cpu",
                        "--steps", "1", "--modalities", "depth", "--patch-size", "1", "4", "4",
                        "--out", str(tmp_path / "run")])
    assert load_transformer(tmp_path / "run" / "transformer.safetensors").config.patch_size == (1, 4, 4)
    assert json.loads((tmp_path / "run" / "training.json").read_text())["patch_size"] == [1, 4, 4]
    with pytest.raises(SystemExit):  # --init keeps the folder's transformer as it is
        train_default.main(["--init", str(tmp_path), "--patch-size", "1", "4", "4", "--out", str(tmp_path / "x")])


def test_cached_pool_of_another_clip_length_is_refused(tmp_path):
    from unity_core.train.pool import load_or_render_pool

    render_pool(range(1), num_frames=5, height=16, width=16, log=None).save(tmp_path / "pool.safetensors")
    assert load_or_render_pool(tmp_path / "pool.safetensors", 1, num_frames=5).videos["rgb"].shape[1] == 5
    with pytest.raises(ValueError, match="holds 1 clips, not 24"):
        load_or_render_pool(tmp_path / "pool.safetensors", 24, num_frames=5)
    with pytest.raises(ValueError, match="5-frame clips, not 33"):
        load_or_render_pool(tmp_path / "pool.safetensors", 1, num_frames=33)


def test_codec_crops_draw_every_modality_from_a_loaded_pool(tmp_path):
    from unity_core.constants import MODALITIES
    from unity_core.train.codec import _crop_batch
    from unity_core.train.pool import ClipPool

    pool = ClipPool({"rgb": torch.zeros(1, 5, 8, 8, 3, dtype=torch.uint8),
                     **{m: torch.full((1, 5, 8, 8, 3), 10 * (i + 1), dtype=torch.uint8) for i, m in enumerate(MODALITIES)}},
                    ["a"])
    loaded = ClipPool.load(pool.save(tmp_path / "pool.safetensors"))
    assert list(loaded.videos) == ["rgb", *MODALITIES]  # rendering order, not the file's alphabetical one
    g = torch.Generator().manual_seed(0)
    crops = _crop_batch(loaded, 400, 5, 8, g, rgb_share=0.0)  # modality crops only
    drawn = {round(float(c.mean()) * 255 / 2 + 255 / 2) for c in crops.unbind(0)}  # [-1, 1] -> 0-255
    assert drawn == {10 * (i + 1) for i in range(len(MODALITIES))}


def test_csv_modality_columns_may_use_aliases(tmp_path):
    from unity_core.data.csv_dataset import CSVVideoDataset
    from unity_core.io import write_video

    write_video(tmp_path / "v.mp4", torch.rand(5, 16, 16, 3))
    write_video(tmp_path / "f.mp4", torch.rand(5, 16, 16, 3))
    (tmp_path / "set.csv").write_text("video,prompt,flow\nv.mp4,a room,f.mp4\n")
    ds = CSVVideoDataset(tmp_path / "set.csv", num_frames=5, size=(16, 16))
    assert ds.modalities == ["raft"] and ds[0]["raft"].shape == (5, 16, 16, 3)
    videos, _ = ds.stacked()
    assert set(videos) == {"rgb", "raft"}
    with pytest.raises(ValueError, match=r"has no column for \['depth'\]"):
        CSVVideoDataset(tmp_path / "set.csv", modalities=["depth"])
    (tmp_path / "empty.csv").write_text("video,prompt,depth\n")
    with pytest.raises(ValueError, match="has a header but no rows"):
        CSVVideoDataset(tmp_path / "empty.csv")


def test_train_default_names_are_checked_before_any_data_is_prepared(tmp_path, capsys):
    train_default = _train_default_script()
    # nothing exists at these paths: a bad name must stop the run before it looks for data
    base = ["--latents", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    with pytest.raises(SystemExit, match="unknown name 'typo'"):
        train_default.main(base + ["--tasks", "video2flow", "typo"])
    with pytest.raises(SystemExit):
        train_default.main(base + ["--tasks", "text2video"])  # weight 0 by default: never drawn
    assert "would never be drawn" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown name 'normals'"):
        train_default.main(base + ["--modality-weights", "normals=1"])
    assert train_default._weights(["flow=1"], train_default.TRAIN_MODALITY_WEIGHTS,
                                  train_default.resolve_modality) == {"raft": 1.0}
    assert train_default._canonical("estimation", train_default.ALL_TASKS, train_default.resolve_task) == "video2flow"
