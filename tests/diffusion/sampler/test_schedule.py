"""The schedule buffers and DDIM tables equal the original's (vectors/schedule.npz), bit for bit
where the original is deterministic, and impossible step counts are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import InputError, ModelError  # noqa: E402
from tooncrafter_studio.diffusion.nets.schedule import (  # noqa: E402
    BUFFER_NAMES,
    DDIMTables,
    ScheduleConfig,
    ddim_tables,
    ddim_timesteps,
    schedule_buffers,
    supported_step_counts,
)

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
VECTORS = REFERENCE / "vectors"


def _npz(name: str):
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    return np.load(path)


def test_buffers_have_the_manifest_names_shapes_and_order():
    manifest = REFERENCE / "tooncrafter_512_keys.json"
    if not manifest.exists():
        pytest.skip("manifest not available")
    entries = [e for e in json.loads(manifest.read_text())["entries"] if "." not in e["key"]]
    buffers = schedule_buffers()
    assert list(buffers) == [e["key"] for e in entries]
    for e in entries:
        assert tuple(buffers[e["key"]].shape) == tuple(e["shape"])
        assert buffers[e["key"]].dtype == torch.float32


def test_buffers_equal_the_original_exactly():
    ref = _npz("schedule.npz")
    buffers = schedule_buffers()
    assert set(BUFFER_NAMES) == {k.split("/", 1)[1] for k in ref.files if k.startswith("buffer/")}
    for name, value in buffers.items():
        np.testing.assert_array_equal(value.numpy(), ref[f"buffer/{name}"], err_msg=name)
    acp = buffers["alphas_cumprod"]
    assert acp[-1].item() == 0.0  # zero terminal SNR
    assert acp[0].item() == pytest.approx(0.99915, abs=1e-6)


@pytest.mark.parametrize("steps", [50, 5, 4])
@pytest.mark.parametrize("eta", [0, 1])
def test_ddim_tables_match_the_original(steps, eta):
    ref = _npz("schedule.npz")
    tables = ddim_tables(schedule_buffers(), steps, eta).as_original()
    prefix = f"ddim_S{steps}_eta{eta}/"
    np.testing.assert_array_equal(tables["timesteps"].numpy(), ref[prefix + "timesteps"])
    assert tables["timesteps"].dtype == torch.int64
    for name, value in tables.items():
        if name == "timesteps":
            continue
        expected = ref[prefix + name]
        # Same precision as the original holds the table in.
        assert str(value.dtype).replace("torch.", "") in str(ref[prefix + name + "__dtype"]), name
        assert DDIMTables.ORIGINAL_DTYPES[name] == str(ref[prefix + name + "__dtype"])
        if name == "ddim_sigmas":
            # within one float32 ulp of the value the loop uses
            np.testing.assert_allclose(value.numpy(), expected, rtol=3e-8, atol=0, err_msg=name)
            np.testing.assert_array_less(np.abs(value.float().numpy() - expected.astype(np.float32)),
                                         np.abs(expected.astype(np.float32)) * 1.2e-7 + 1e-30)
        else:
            np.testing.assert_array_equal(value.numpy(), expected, err_msg=name)


def test_trailing_spacing_ends_at_the_last_timestep():
    np.testing.assert_array_equal(ddim_timesteps(50)[:3], [19, 39, 59])
    assert ddim_timesteps(50)[-1] == 999
    assert ddim_timesteps(1).tolist() == [999]
    for s in (7, 11, 14, 25, 60):
        t = ddim_timesteps(s)
        assert len(t) == s and t[-1] == 999 and t[0] >= 0 and np.all(np.diff(t) > 0)


@pytest.mark.parametrize("steps", [61, 0, -3, 1001])
def test_unrepresentable_step_counts_are_refused(steps):
    with pytest.raises(InputError, match="steps"):
        ddim_timesteps(steps)
    with pytest.raises(InputError):
        ddim_tables(None, steps, 1.0)


def test_61_is_not_in_the_supported_counts_but_60_and_62_are():
    counts = supported_step_counts(maximum=70)
    assert 61 not in counts and 60 in counts and 62 in counts and 1 in counts


def test_eta_outside_0_1_is_refused():
    with pytest.raises(InputError, match="eta"):
        ddim_tables(None, 5, 1.5)


def test_config_from_yaml_params_ignores_other_keys_and_rejects_other_schedules():
    params = {"target": "lvdm.models.ddpm3d.LatentVisualDiffusion",
              "params": {"linear_start": 0.001, "linear_end": 0.02, "timesteps": 1000, "base_scale": 0.5,
                         "unet_config": {"x": 1}, "use_dynamic_rescale": True}}
    cfg = ScheduleConfig.from_params(params)
    assert cfg.linear_start == 0.001 and cfg.base_scale == 0.5 and cfg.parameterization == "v"
    assert schedule_buffers(cfg)["scale_arr"][-1].item() == pytest.approx(0.5)
    assert ScheduleConfig.from_params(None) == ScheduleConfig()
    with pytest.raises(ModelError, match="cosine"):
        ScheduleConfig.from_params({"beta_schedule": "cosine"})


def test_without_dynamic_rescale_the_scale_table_is_one():
    cfg = ScheduleConfig(use_dynamic_rescale=False)
    assert torch.all(schedule_buffers(cfg)["scale_arr"] == 1.0)
