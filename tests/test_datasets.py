"""Dataset loaders (Home Depot, WANDS, ESCI, generic), soft labels, grade distributions and query-level splits."""
from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from training.datasets import (
    ESCI_GRADES,
    DataError,
    Dataset,
    Judgment,
    grade_distribution,
    load_dataset,
    load_esci,
    load_generic,
    load_homedepot,
    load_wands,
    read_catalog,
    read_table,
    split_of,
)

ESCI_FIXTURE = Path(__file__).parent / "fixtures" / "esci"


def raises(message: str):
    """pytest.raises(DataError) matching ``message`` literally."""
    return pytest.raises(DataError, match=re.escape(message))


# --- Home Depot ------------------------------------------------------------------------------------------------

def write_latin1(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


def test_homedepot_reads_latin1_into_a_dataset(tmp_path):
    path = write_latin1(tmp_path / "train.csv", 'id,product_uid,product_title,search_term,relevance\n'
                                                 '1,100001,Caf\xe9 table 36 in.,cafe table,3\n'
                                                 '2,100002,Garden hose,cafe table,1.67\n')
    data = load_homedepot(path)
    assert data.name == "homedepot" and data.grade_levels == (0.0, 0.5, 1.0)
    assert data.products == {"100001": {"title": "Caf\xe9 table 36 in."}, "100002": {"title": "Garden hose"}}
    assert data.judgments[0] == Judgment("cafe table", "100001", "3", 1.0)
    assert data.judgments[1].grade == "1.67" and data.judgments[1].soft_label == pytest.approx(0.335)


@pytest.mark.parametrize("text, message", [
    ("id,product_uid,product_title,relevance\n1,1,t,3\n", "lacks column(s) search_term"),
    ("id,product_uid,product_title,search_term,relevance\n1,1,t, ,3\n", "line 2: empty search_term"),
    ("id,product_uid,product_title,search_term,relevance\n1,1,t,q,high\n", "relevance 'high' is not a number"),
])
def test_homedepot_bad_input_is_named(tmp_path, text, message):
    with raises(message):
        load_homedepot(write_latin1(tmp_path / "train.csv", text))


def test_split_is_deterministic_disjoint_and_normalized():
    queries = [f"query {i}" for i in range(5000)]
    first = {q: split_of(q) for q in queries}
    assert first == {q: split_of(q) for q in queries}
    assert split_of("Cordless  Drill") == split_of("cordless drill")
    counts = Counter(first.values())
    assert 0.77 < counts["train"] / 5000 < 0.83 and counts["validation"] > 0 and counts["test"] > 0


def test_dataset_split_keeps_each_query_in_one_split():
    judgments = [Judgment(f"q{i % 50}", str(i), "1", 1.0) for i in range(200)]
    data = Dataset("t", {str(i): {"title": "x"} for i in range(200)}, judgments)
    parts = {name: data.split(name) for name in ("train", "validation", "test")}
    assert sum(len(p) for p in parts.values()) == 200
    queries = [{j.query for j in p} for p in parts.values()]
    assert not (queries[0] & queries[1] or queries[0] & queries[2] or queries[1] & queries[2])
    with raises("unknown split 'dev'"):
        data.split("dev")


# --- Grade distributions ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("soft, levels, expected", [
    (0.665, (0.0, 0.5, 1.0), [0.0, 0.67, 0.33]),
    (1.0, (0.0, 0.5, 1.0), [0.0, 0.0, 1.0]),
    (0.0, (1.0, 0.5, 0.0), [1.0, 0.0, 0.0]),  # levels are sorted first
    (1.7, (0.0, 0.5, 1.0), [0.0, 0.0, 1.0]),  # clamped
    (0.1, (0.0, 0.01, 0.1, 1.0), [0.0, 0.0, 1.0, 0.0]),
    (0.55, (0.0, 0.1, 1.0), [0.0, 0.5, 0.5]),
])
def test_grade_distribution(soft, levels, expected):
    assert grade_distribution(soft, levels) == pytest.approx(expected)


# --- WANDS -------------------------------------------------------------------------------------------------------

WANDS_PRODUCTS = [
    ["product_id", "product_name", "product_class", "category hierarchy", "product_description",
     "product_features", "rating_count", "average_rating", "review_count"],
    ["0", "solid wood platform bed", "Beds", "Furniture / Bedroom Furniture / Beds", "a bed, sturdy, wooden",
     "color:brown|material:wood", "15", "4.5", "15"],
    ["1", "all-clad 7 qt. slow cooker", "Slow Cookers", "Kitchen / Small Appliances", "", "", "", "", ""],
]
WANDS_QUERIES = [["query_id", "query", "query_class"], ["0", "salon chair", "Massage Chairs"],
                 ["1", "wooden bed", "Beds"]]
WANDS_LABELS = [["id", "query_id", "product_id", "label"], ["0", "1", "0", "Exact"], ["1", "1", "1", "Irrelevant"],
                ["2", "0", "1", "Partial"]]


def write_tsv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(rows)


def write_wands(directory: Path, labels: list[list[str]] = WANDS_LABELS) -> Path:
    directory.mkdir(exist_ok=True)
    write_tsv(directory / "product.csv", WANDS_PRODUCTS)
    write_tsv(directory / "query.csv", WANDS_QUERIES)
    write_tsv(directory / "label.csv", labels)
    return directory


def test_wands_loads_tab_separated_files(tmp_path):
    data = load_wands(write_wands(tmp_path / "wands"))
    assert data.name == "wands" and data.grade_levels == (0.0, 0.5, 1.0)
    assert data.products["0"] == {"title": "solid wood platform bed", "description": "a bed, sturdy, wooden",
                                  "product_class": "Beds", "category": "Furniture / Bedroom Furniture / Beds",
                                  "features": "color:brown|material:wood"}
    assert data.judgments == [Judgment("wooden bed", "0", "Exact", 1.0), Judgment("wooden bed", "1", "Irrelevant", 0.0),
                              Judgment("salon chair", "1", "Partial", 0.5)]


def test_wands_custom_grade_map_sets_levels(tmp_path):
    data = load_wands(write_wands(tmp_path / "wands"), {"Exact": 1.0, "Partial": 0.2, "Irrelevant": 0.0})
    assert data.grade_levels == (0.0, 0.2, 1.0) and data.judgments[2].soft_label == 0.2


@pytest.mark.parametrize("labels, message", [
    (WANDS_LABELS + [["3", "0", "77", "Exact"]], "label.csv line 5: product '77' is not in"),
    (WANDS_LABELS + [["3", "9", "0", "Exact"]], "label.csv line 5: query_id '9' is not in query.csv"),
    (WANDS_LABELS + [["3", "0", "0", "Great"]], "label.csv line 5: grade 'Great' is not in the grade map"),
    ([["id", "query_id", "product_id"], ["0", "1", "0"]], "lacks column(s) label"),
])
def test_wands_bad_labels_are_named(tmp_path, labels, message):
    with raises(message):
        load_wands(write_wands(tmp_path / "wands", labels))


def test_wands_missing_file_is_named(tmp_path):
    directory = write_wands(tmp_path / "wands")
    (directory / "query.csv").unlink()
    with raises("lacks query.csv"):
        load_wands(directory)


# --- ESCI --------------------------------------------------------------------------------------------------------

def test_esci_sample_loads_csv_and_vespa_jsonl():
    data = load_esci(ESCI_FIXTURE)
    assert data.name == "esci" and data.grade_levels == (0.0, 0.01, 0.1, 1.0)
    assert len(data.judgments) == 16 and len(data.products) == 16
    assert Counter(j.grade for j in data.judgments) == {"I": 7, "S": 6, "E": 3}
    assert {j.query for j in data.judgments} == {"06 bmw 325i radio oem not navigation system"}
    first = data.judgments[0]
    assert (first.product_id, first.grade, first.soft_label) == ("B08VSJGP1N", "S", 0.1)
    product = data.products["B08VSJGP1N"]
    assert set(product) == {"title", "description", "bullets", "brand", "color"}
    assert product["title"].startswith("Apple Carplay Double Din Car Stereo")
    assert data.products["B08SHMLP5S"]["color"] == ""  # null in the JSONL


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def esci_release(directory: Path, extra_example: dict | None = None) -> Path:
    """A two-locale miniature of the ESCI release files."""
    directory.mkdir(exist_ok=True)
    examples = [{"example_id": 1, "query": "usb cable", "query_id": 7, "product_id": "B01", "product_locale": "us",
                 "esci_label": "E", "small_version": 1, "large_version": 1, "split": "train"},
                {"example_id": 2, "query": "cable usb", "query_id": 8, "product_id": "B02", "product_locale": "es",
                 "esci_label": "C", "small_version": 1, "large_version": 1, "split": "test"}]
    examples += [extra_example] if extra_example else []
    write_parquet(directory / "shopping_queries_dataset_examples.parquet", examples)
    products = [{"product_id": "B01", "product_title": "Cable USB (jp)", "product_description": None,
                 "product_bullet_point": "b", "product_brand": "Acme", "product_color": "red", "product_locale": "jp"},
                {"product_id": "B01", "product_title": "USB cable 2 m", "product_description": "long",
                 "product_bullet_point": "fast", "product_brand": "Acme", "product_color": "black",
                 "product_locale": "us"},
                {"product_id": "B02", "product_title": "Cable USB", "product_description": "",
                 "product_bullet_point": None, "product_brand": "Marca", "product_color": None, "product_locale": "es"},
                {"product_id": "B99", "product_title": "never judged", "product_description": "",
                 "product_bullet_point": None, "product_brand": "", "product_color": None, "product_locale": "us"}]
    write_parquet(directory / "shopping_queries_dataset_products.parquet", products)
    (directory / "shopping_queries_dataset_sources.csv").write_text("query_id,source\n7,other\n", encoding="utf-8")
    return directory


def test_esci_release_parquet_keeps_the_judged_locale(tmp_path):
    data = load_esci(esci_release(tmp_path / "esci"))
    assert data.judgments == [Judgment("usb cable", "B01", "E", 1.0), Judgment("cable usb", "B02", "C", 0.01)]
    assert data.products == {
        "B01": {"title": "USB cable 2 m", "description": "long", "bullets": "fast", "brand": "Acme", "color": "black"},
        "B02": {"title": "Cable USB", "description": "", "bullets": "", "brand": "Marca", "color": ""},
    }


def test_esci_unknown_product_is_named(tmp_path):
    extra = {"example_id": 3, "query": "hdmi", "query_id": 9, "product_id": "B404", "product_locale": "us",
             "esci_label": "I", "small_version": 0, "large_version": 1, "split": "train"}
    with raises("shopping_queries_dataset_examples.parquet row 3: product 'B404' is not in"):
        load_esci(esci_release(tmp_path / "esci", extra))


def test_esci_file_discovery_errors(tmp_path):
    with raises("has no judgments file"):
        load_esci(tmp_path)
    shutil.copy(ESCI_FIXTURE / "test-sample.csv", tmp_path / "a.csv")
    with raises("has no products file"):
        load_esci(tmp_path)
    shutil.copy(ESCI_FIXTURE / "test-sample.csv", tmp_path / "b.csv")
    with raises("holds several *.csv files: a.csv, b.csv"):
        load_esci(tmp_path)


# --- Generic format -------------------------------------------------------------------------------------------------

JUDGMENTS = [{"query": "cordless drill", "product_id": "p1", "grade": "1"},
             {"query": "cordless drill", "product_id": "p2", "grade": "0.25"},
             {"query": "Paint ", "product_id": "p2", "grade": "good"}]
CATALOG = [{"id": "p1", "title": "18V drill", "brand": "Makita"}, {"id": "p2", "title": "White paint", "brand": ""}]


def write_table(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as CSV, JSONL or Parquet, by suffix."""
    if path.suffix == ".parquet":
        return write_parquet(path, rows)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_generic_reads_every_format_alike(tmp_path, suffix):
    data = load_generic(write_table(tmp_path / f"judgments{suffix}", JUDGMENTS),
                        write_table(tmp_path / f"catalog{suffix}", CATALOG), {"good": 0.8})
    assert data.name == "generic"
    assert data.products == {"p1": {"title": "18V drill", "brand": "Makita"},
                             "p2": {"title": "White paint", "brand": ""}}
    assert data.judgments == [Judgment("cordless drill", "p1", "1", 1.0),
                              Judgment("cordless drill", "p2", "0.25", 0.25), Judgment("Paint", "p2", "good", 0.8)]
    assert data.grade_levels == (0.0, 0.25, 0.8, 1.0)  # numeric grades bring their 0..1 scale


def test_generic_numeric_grades_from_parquet_and_product_id_key(tmp_path):
    judgments = write_parquet(tmp_path / "j.parquet", [{"query": "q", "product_id": "p1", "grade": 0.5},
                                                       {"query": "q", "product_id": "p2", "grade": 1}])
    catalog = write_table(tmp_path / "c.jsonl", [{"product_id": "p1", "title": "a", "tags": ["x", "y"], "price": 3},
                                                 {"product_id": "p2", "title": "b", "tags": None, "price": 4.5}])
    data = load_generic(judgments, catalog)
    assert [j.soft_label for j in data.judgments] == [0.5, 1.0] and data.grade_levels == (0.0, 0.5, 1.0)
    assert data.products["p1"] == {"title": "a", "tags": "x y", "price": "3"}
    assert data.products["p2"] == {"title": "b", "tags": "", "price": "4.5"}


def test_generic_categorical_grades_take_the_map_levels(tmp_path):
    rows = [{"query": "q", "product_id": "p1", "grade": "good"}, {"query": "q", "product_id": "p2", "grade": "bad"}]
    data = load_generic(write_table(tmp_path / "j.csv", rows), write_table(tmp_path / "c.csv", CATALOG),
                        {"good": 0.8, "bad": 0.1, "ok": 0.8})
    assert data.grade_levels == (0.1, 0.8)


def test_generic_continuous_grades_fall_back_to_three_levels(tmp_path):
    rows = [{"query": f"q{i}", "product_id": "p1", "grade": str(i / 20)} for i in range(15)]
    data = load_generic(write_table(tmp_path / "j.csv", rows), write_table(tmp_path / "c.csv", CATALOG))
    assert data.grade_levels == (0.0, 0.5, 1.0)


def test_read_catalog_unwraps_vespa_feed_lines():
    catalog = read_catalog(ESCI_FIXTURE / "sample-products.jsonl")
    assert len(catalog) == 16 and catalog["B08VSJGP1N"]["brand"] and "id" not in catalog["B08VSJGP1N"]
    assert catalog["B08VSJGP1N"]["locale"] == "us"


def test_read_table_detects_tabs_and_strips_bom(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffid\tname\n1\ta, b\n".encode("utf-8"))
    assert list(read_table(path)) == [{"id": "1", "name": "a, b"}]


@pytest.mark.parametrize("judgments, message", [
    ([{"query": "q", "product_id": "p1"}], "j.csv line 2 lacks column(s) grade"),
    ([{"query": "q", "product_id": "p1", "grade": "1"}, {"query": "  ", "product_id": "p1", "grade": "1"}],
     "j.csv line 3: empty query"),
    ([{"query": "q", "product_id": "p1", "grade": "meh"}], "line 2: grade 'meh' is not in the grade map"),
    ([{"query": "q", "product_id": "p1", "grade": "3"}], "line 2: grade 3 is outside [0, 1]"),
    ([{"query": "q", "product_id": "p9", "grade": "1"}], "line 2: product 'p9' is not in"),
])
def test_generic_bad_judgments_are_named(tmp_path, judgments, message):
    with raises(message):
        load_generic(write_table(tmp_path / "j.csv", judgments), write_table(tmp_path / "c.csv", CATALOG),
                     {"good": 0.8})


def test_generic_category_without_grade_map_says_so(tmp_path):
    with raises("grade 'good' is not a number and there is no grade map"):
        load_generic(write_table(tmp_path / "j.csv", JUDGMENTS), write_table(tmp_path / "c.csv", CATALOG))


def test_non_utf8_file_names_line_and_fix(tmp_path):
    path = tmp_path / "j.csv"
    path.write_bytes("query,product_id,grade\nq,p1,1\ncaf\xe9,p2,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"j\.csv line 3 is not UTF-8") as err:
        load_generic(path, write_table(tmp_path / "c.csv", CATALOG))
    assert "iconv -f latin1 -t utf-8" in str(err.value)


@pytest.mark.parametrize("name, content, message", [
    ("c.csv", "id,title\np1,a\np1,b\n", "c.csv line 3: duplicate product id 'p1'"),
    ("c.csv", "sku,title\np1,a\n", "c.csv line 2 has no id or product_id column"),
    ("c.csv", "id,title\n", "c.csv has no products"),
    ("c.jsonl", '{"id": "p1"}\n{"id": \n', "c.jsonl line 2: invalid JSON"),
    ("c.jsonl", '["p1"]\n', "c.jsonl line 1: expected a JSON object, got list"),
    ("c.parquet", "not parquet", "is not a readable Parquet file"),
    ("c.xlsx", "", "unsupported file type .xlsx"),
])
def test_bad_catalogs_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with raises(message):
        read_catalog(path)


# --- Dispatch ---------------------------------------------------------------------------------------------------------

def test_load_dataset_dispatches_on_kind(tmp_path):
    assert load_dataset("esci", ESCI_FIXTURE, {**ESCI_GRADES, "S": 0.3}).judgments[0].soft_label == 0.3
    assert load_dataset("wands", write_wands(tmp_path / "wands")).name == "wands"
    home = write_latin1(tmp_path / "train.csv", "product_uid,product_title,search_term,relevance\n1,t,q,2\n")
    assert load_dataset("homedepot", home).judgments[0].soft_label == 0.5
    generic = load_dataset("generic", write_table(tmp_path / "j.csv", JUDGMENTS[:2]),
                           catalog=write_table(tmp_path / "c.csv", CATALOG))
    assert generic.name == "generic" and len(generic.judgments) == 2
    with raises("data kind 'generic' needs a catalog file"):
        load_dataset("generic", tmp_path / "j.csv")
    with raises("unknown data kind 'msmarco' — use one of homedepot, wands, esci, generic"):
        load_dataset("msmarco", tmp_path)
