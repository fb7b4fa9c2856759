"""Home Depot loader, soft labels and deterministic query-level splits."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from training.data import DataError, load_homedepot, split_of

def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


def test_loader_reads_latin1_and_maps_grades(tmp_path):
    path = write_csv(tmp_path / "train.csv", 'id,product_uid,product_title,search_term,relevance\n'
                                             '1,100001,Caf\xe9 table 36 in.,cafe table,3\n'
                                             '2,100002,Garden hose,cafe table,1.67\n')
    rows = load_homedepot(path)
    assert rows[0].product_text == "Caf\xe9 table 36 in." and rows[0].soft_label == 1.0
    assert rows[1].soft_label == pytest.approx(0.335)


@pytest.mark.parametrize("text, message", [
    ("id,product_uid,product_title,relevance\n1,1,t,3\n", "lacks column(s) search_term"),
    ("id,product_uid,product_title,search_term,relevance\n1,1,t, ,3\n", "line 2: empty search_term"),
    ("id,product_uid,product_title,search_term,relevance\n1,1,t,q,high\n", "relevance 'high' is not a number"),
])
def test_bad_input_is_named(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_homedepot(write_csv(tmp_path / "train.csv", text))


def test_split_is_deterministic_disjoint_and_normalized():
    queries = [f"query {i}" for i in range(5000)]
    first = {q: split_of(q) for q in queries}
    assert first == {q: split_of(q) for q in queries}
    assert split_of("Cordless  Drill") == split_of("cordless drill")
    counts = Counter(first.values())
    assert 0.77 < counts["train"] / 5000 < 0.83 and counts["validation"] > 0 and counts["test"] > 0
