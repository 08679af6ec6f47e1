"""The pipeline front door on the embedded default."""

import pytest
import torch

from unity_core.pipeline import UnityVideoPipeline


@pytest.fixture(scope="module")
def pipe():
    return UnityVideoPipeline.from_pretrained("default")


def test_shipped_default_loads_strictly_and_runs_every_task(pipe):
    frames = torch.rand(17, 64, 64, 3)
    est = pipe.estimate(frames, "depth", steps=2, seed=0)
    assert est.modality_frames.shape == (17, 64, 64, 3) and est.values.shape == (17, 64, 64)
    gen = pipe.generate("a person", "segmentation", steps=2, seed=0)
    assert gen.rgb.shape == (17, 64, 64, 3) and gen.values.dtype == torch.int64
    ctl = pipe.control(gen.modality_frames, "segmentation", "a person", steps=2, seed=0)
    assert torch.isfinite(ctl.rgb).all()


def test_same_seed_same_result(pipe):
    a = pipe.generate("a room", "depth", steps=2, seed=3)
    b = pipe.generate("a room", "depth", steps=2, seed=3)
    assert torch.equal(a.rgb, b.rgb)


def test_save_and_reload(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    again = UnityVideoPipeline.from_pretrained(tmp_path / "p")
    ref = pipe.transformer.state_dict()
    assert all(torch.equal(v.to(ref[k].dtype), ref[k]) for k, v in again.transformer.state_dict().items())
    with pytest.raises(FileExistsError):
        pipe.save_pretrained(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        UnityVideoPipeline.from_pretrained(tmp_path / "nothing")
