"""How `reranker check` reads OpenSearch's watermark and byte-size settings (percent, ratio, free bytes)."""
from __future__ import annotations

import pytest

from reranker_core.errors import RerankerError
from reranker_plugin.jobs.check import parse_bytes, past


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
