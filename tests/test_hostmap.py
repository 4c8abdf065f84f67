"""The host bus map: identification words, windows, and that docs/architecture.md's
generated table agrees with openlpu.hostmap."""

import re
from pathlib import Path

import pytest

from openlpu.config import PRESETS
from openlpu.hostmap import ID, HostMap

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_id_is_olpu_little_endian():
    assert ID.to_bytes(4, "little") == b"OLPU"


@pytest.mark.parametrize("name", list(PRESETS))
def test_doc_table_matches_the_map(name):
    h = HostMap(PRESETS[name])
    w = h.config_words
    row = next(line for line in DOC.read_text().splitlines()
               if re.match(rf"\| {name} \| 0x[0-9A-F]{{8}} \|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1], 16) == w["CONFIG_HASH"]
    assert int(cells[2], 16) == w["CONFIG0"]
    assert int(cells[3], 16) == w["CONFIG1"]
    assert int(cells[4], 16) == w["CONFIG2"]
    assert int(cells[5].split()[0]) == w["NCOUNTERS"]
    assert int(cells[6]) == h.lanes_padded
    assert int(re.sub(",", "", cells[7].split()[0])) == h.sram_window_bytes


@pytest.mark.parametrize("name", list(PRESETS))
def test_windows_do_not_overlap(name):
    cfg = PRESETS[name]
    h = HostMap(cfg)
    last_counter = h.counter(len(h.counter_names) - 1)
    last_queue = h.queue_word(len(cfg.queues) - 1, cfg.queue_depth - 1) + 4
    last_sram = h.sram_word(cfg.mem_slices - 1, cfg.address_space - 1) + h.lanes_padded - 4
    assert last_counter < 0x1000_0000 <= last_queue < 0x4000_0000 <= last_sram < 0x8000_0000
    assert h.lanes_padded & (h.lanes_padded - 1) == 0 and h.lanes_padded >= cfg.lanes


def test_a_config_without_performance_counters_has_none_in_the_map():
    cfg = PRESETS["small"]
    h = HostMap(cfg)
    assert len(h.counter_names) == h.config_words["NCOUNTERS"] == len(cfg.queues) + 2 * \
        cfg.mem_slices + cfg.mxm_planes
    bare = HostMap(cfg.replace(name="bare", perf_counters=False))
    assert bare.counter_names == [] and bare.config_words["NCOUNTERS"] == 0
    assert bare.config_words["CONFIG_HASH"] != h.config_words["CONFIG_HASH"]
