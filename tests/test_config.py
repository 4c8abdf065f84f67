"""Chip configs: the published groqchip figures, presets, derived floorplan, validation."""

import json
from pathlib import Path

import pytest

from openlpu.config import PRESETS, ChipConfig, ConfigError, SliceKind, get_config


def test_groqchip_derived_figures_match_the_published_chip():
    c = PRESETS["groqchip"]
    assert c.lanes == 320
    assert c.superlanes == 20 and c.lanes_per_superlane == 16
    assert c.streams_per_direction == 32
    assert c.mem_slices == 88
    assert c.macs_per_cycle == 409_600
    assert c.vxm_alu_count == 5_120
    assert c.sram_bytes == 230_686_720
    assert c.sram_bytes / 2**20 == 220
    assert c.peak_int8_tops == pytest.approx(737.28)
    assert c.sram_bytes_per_cycle == 56_320
    assert c.sram_read_bytes_per_cycle == 88 * 320
    assert c.stream_bytes_per_cycle == 2 * 32 * 320


@pytest.mark.parametrize("name", list(PRESETS))
def test_floorplan_is_mirrored_around_the_vxm(name):
    c = PRESETS[name]
    kinds = [s.kind for s in c.slices]
    vxm = kinds.index(SliceKind.VXM)
    assert kinds.count(SliceKind.VXM) == 1
    assert kinds[:vxm].count(SliceKind.MEM) == kinds[vxm + 1:].count(SliceKind.MEM)
    assert [s.position for s in c.slices] == list(range(c.positions))
    assert c.slices[0].kind is SliceKind.MXM
    names = [s.name for s in c.slices]
    assert names[vxm - 1] == "mem_w0" and names[vxm + 1] == "mem_e0"
    sxms = 2 if c.sxm else 0
    assert len(c.queues) == c.mem_slices + c.vxm_alus_per_lane + sxms + c.mxm_planes
    assert [s.index for s in c.mem_slice_list] == list(range(c.mem_slices))


def test_config_hash_ignores_name_and_clock_but_not_hardware():
    a = PRESETS["ecp5"]
    assert a.replace(name="other", clock_mhz=50.0).config_hash == a.config_hash
    assert a.replace(vxm_alus_per_lane=1).config_hash != a.config_hash


@pytest.mark.parametrize("field,value,words", [
    ("lanes_per_superlane", 12, "power of two"),
    ("streams_per_direction", 6, "multiple of 4"),
    ("streams_per_direction", 64, "4..32"),
    ("mem_words_per_bank", 1000, "power of two"),
    ("mxm_planes", 0, "1..4"),
    ("superlanes", 0, "1..256"),
    ("vxm_alus_per_lane", "2", "must be a number"),
    ("superlanes", 2.5, "an integer"),
])
def test_bad_fields_name_the_field_value_and_range(field, value, words):
    with pytest.raises(ConfigError) as e:
        PRESETS["ecp5"].replace(**{field: value})
    assert field in str(e.value) and words in str(e.value)


def test_streams_must_cover_a_superlane_for_transpose():
    with pytest.raises(ConfigError, match="lanes_per_superlane"):
        PRESETS["sim"].replace(streams_per_direction=8)


def test_get_config_presets_files_and_overrides(tmp_path):
    assert get_config("sim") == PRESETS["sim"]
    assert get_config("sim", vxm_alus_per_lane=2).vxm_alus_per_lane == 2
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**PRESETS["small"].to_dict(), "name": "mine",
                                "superlanes": 2}))
    c = get_config(str(path))
    assert c.name == "mine" and c.lanes == 8
    with pytest.raises(ConfigError, match="unknown config 'nope'.*groqchip"):
        get_config("nope")
    with pytest.raises(ConfigError, match="unknown field.*color"):
        get_config("sim", color=3)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="cannot read config file"):
        get_config(str(bad))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"superlanes": 1}))
    with pytest.raises(ConfigError, match="missing field"):
        get_config(str(partial))


def test_user_config_of_any_valid_shape_builds_a_floorplan():
    c = ChipConfig(name="odd", superlanes=3, lanes_per_superlane=2, streams_per_direction=4,
                   mem_slices_per_hemisphere=5, mem_words_per_bank=64, mxm_planes=3,
                   mxm_acc_depth=7, vxm_alus_per_lane=3, queue_depth=16, clock_mhz=10)
    assert c.lanes == 6
    assert [s.name for s in c.slices if s.kind is SliceKind.MXM] == ["mxm2", "mxm0", "mxm1"]


def test_resource_options_are_validated_and_change_the_hash_only_when_set():
    base = PRESETS["ecp5"]
    assert base.vxm_special_alus == 1 and base.vxm_multiplier is True
    # at their defaults they are left out of the hash: configs from before they existed
    # (and the boards built from them) keep their hash
    assert "vxm_special_alus" in base.to_dict()
    lean = base.replace(vxm_special_alus=0, vxm_multiplier=False)
    assert lean.config_hash not in (base.config_hash,
                                    base.replace(vxm_special_alus=0).config_hash,
                                    base.replace(vxm_multiplier=False).config_hash)
    assert base.replace(vxm_special_alus=2).vxm_alu_has_special(1)
    assert not base.vxm_alu_has_special(1)
    with pytest.raises(ConfigError, match=r"vxm_special_alus.*0\.\.vxm_alus_per_lane \(2\)"):
        base.replace(vxm_special_alus=3)
    with pytest.raises(ConfigError, match="vxm_multiplier.*true or false"):
        base.replace(vxm_multiplier=1)
    for field in ("perf_counters", "icu_repeat", "icu_prefetch", "sxm"):
        assert getattr(base, field) is True
        assert base.replace(**{field: False}).config_hash != base.config_hash
        assert base.replace(**{field: True}).config_hash == base.config_hash
        with pytest.raises(ConfigError, match=f"{field}.*true or false, not 'no'"):
            base.replace(**{field: "no"})


def test_a_chip_without_sxms_has_neither_their_slices_nor_their_queues():
    base = PRESETS["ecp5"]
    bare = base.replace(sxm=False)
    assert [s.name for s in bare.slices] == [s.name for s in base.slices
                                             if s.kind is not SliceKind.SXM]
    assert bare.positions == base.positions - 2
    assert [s.position for s in bare.slices] == list(range(bare.positions))
    assert "sxm_e" not in bare.queue_by_name and len(bare.queues) == len(base.queues) - 2
    assert "sxm = false" in bare.unknown_queue("sxm_e")
    assert "sxm = false" not in bare.unknown_queue("mem_x")
    assert "mem_w0" in bare.unknown_queue("mem_x")


def test_the_ice40_preset_is_the_up5k_chip_and_small_the_former_ice40():
    """docs/fpga.md measures the ice40 preset on the UP5K with every resource option off; the
    4-lane preset it replaced keeps its config hash under the name small, so boards and
    programs built for it still identify."""
    ice40 = PRESETS["ice40"]
    assert ice40.lanes == 1 and ice40.mem_slices_per_hemisphere == 1
    assert not (ice40.vxm_special_alus or ice40.vxm_multiplier or ice40.perf_counters
                or ice40.icu_repeat or ice40.icu_prefetch or ice40.sxm)
    assert PRESETS["small"].config_hash == "9dbdeec9"


def test_config_files_may_leave_out_the_resource_options(tmp_path):
    old = {k: v for k, v in PRESETS["small"].to_dict().items()
           if k not in ("vxm_special_alus", "vxm_multiplier", "perf_counters", "icu_repeat",
                        "icu_prefetch", "sxm")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert get_config(str(path)).config_hash == PRESETS["small"].config_hash
    assert not get_config(str(path), vxm_multiplier=False).vxm_multiplier


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples")
                                        .glob("*.json")), ids=lambda p: p.name)
def test_example_configs_load(path):
    config = get_config(str(path))
    assert config.name == path.stem

