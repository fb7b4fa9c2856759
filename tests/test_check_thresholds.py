"""How `reranker check` reads OpenSearch's watermark and byte-size settings (percent, ratio, free bytes)."""
from __future__ import annotations

import pytest

from reranker_core.errors import RerankerError
from reranker_plugin.jobs.check import parse_bytes, past, production_gaps


@pytest.mark.parametrize("text, expected", [("0b", 0), ("5gb", 5 << 30), ("1.5mb", int(1.5 * (1 << 20))),
                                            ("300", 300), ("2KB", 2048)])
def test_byte_sizes(text, expected):
    assert parse_bytes(text) == expected


def test_unreadable_byte_size_is_one_error_line():
    with pytest.raises(RerankerError, match="cannot read the byte size 'lots'"):
        parse_bytes("lots")


@pytest.mark.parametrize("watermark, used, avail, expected", [
    ("90%", 95.0, 10 << 30, True), ("90%", 80.0, 10 << 30, False),
    ("0.9", 91.0, 10 << 30, True), ("0.9", 89.0, 10 << 30, False),
    ("2gb", 99.0, 1 << 30, True), ("2gb", 99.0, 3 << 30, False),  # a byte size is the free space left
])
def test_past_a_watermark(watermark, used, avail, expected):
    assert past(watermark, used, avail) is expected


def test_production_gaps_name_every_looser_setting_of_the_dev_file_and_none_of_production():
    """The dev settings (breakers off, access control off, any node) against production: each looser one is a gap."""
    from reranker_plugin.node.assets import load_json

    prod, dev = (load_json(f"ml-settings-{kind}.json")["persistent"] for kind in ("production", "local-dev"))
    ml = "plugins.ml_commons."
    assert production_gaps(prod, {k: str(v).lower() for k, v in prod.items()}) == []
    assert production_gaps(prod, {k: str(v).lower() for k, v in dev.items()}) == [
        ml + k for k in ("only_run_on_ml_node", "native_memory_threshold", "jvm_heap_memory_threshold",
                         "disk_free_space_threshold", "model_access_control_enabled")]


def test_stricter_breakers_are_no_gap_but_an_unset_setting_is():
    wanted = {"a": 90, "b": "5gb", "c": True}
    assert production_gaps(wanted, {"a": "80", "b": "10gb", "c": "true"}) == []
    assert production_gaps(wanted, {"a": "91", "b": "4gb", "c": None}) == ["a", "b", "c"]
