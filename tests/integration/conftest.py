"""Fixtures that create (and afterwards delete) what integration tests touch in the cluster."""
from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.node.assets import load_json

PRODUCTS = [
    "DEWALT 20V MAX cordless drill driver kit", "Makita 18V LXT cordless hammer drill", "Ryobi ONE+ 18V drill kit",
    "Milwaukee M18 brushless impact driver", "Bosch 12V cordless screwdriver", "Black+Decker corded drill 5.2 amp",
    "drill bit set titanium 29 piece", "masonry drill bits for concrete", "cordless drill battery 20V 4.0Ah",
    "Behr premium plus interior white paint 1 gal", "Glidden exterior paint semi gloss", "paint roller kit 9 in",
    "painters tape blue 1.88 in", "Rust-Oleum spray paint flat black", "paint brush set angled sash",
    "garden hose 50 ft heavy duty", "hose nozzle 8 pattern", "lawn sprinkler oscillating",
    "LED light bulb 60W equivalent soft white", "ceiling fan 52 in with light kit", "outdoor wall lantern black",
    "PVC pipe 1/2 in x 10 ft", "copper pipe fitting elbow 3/4 in", "pipe wrench 14 in",
    "toilet flapper universal", "kitchen faucet pull down chrome", "shower head rain 8 in",
    "wood screws #8 x 1-1/4 in 100 pack", "drywall anchors with screws kit", "hex bolt zinc 3/8 in",
]


def create_products_index(client, prefix: str = "products-test") -> str:
    """A new index ``<prefix>-<random>`` holding the 30 products above (ids p0..p29); returns its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, body=load_json("products-index.json"))
    lines = []
    for i, title in enumerate(PRODUCTS):
        lines += [{"index": {"_index": name, "_id": f"p{i}"}}, {"product_id": f"p{i}", "title": title}]
    result = client.bulk(body=lines, refresh=True)
    assert not result["errors"]
    return name


@pytest.fixture
def products_index(client):
    """A fresh index holding the 30 products above; deleted afterwards."""
    name = create_products_index(client)
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


JUDGED_QUERIES = ["cordless drill", "white paint", "garden hose", "pipe fitting", "light bulb", "screws", "faucet"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, minilm_tokenizer) -> Path:
    """A project folder for CLI runs: generic judgments + catalog, a tiny BERT to start models from, its config."""
    root = tmp_path_factory.mktemp("project")
    with (root / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title"])
        writer.writerows([f"p{i}", t] for i, t in enumerate(PRODUCTS))
    with (root / "judgments.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "product_id", "grade"])
        for q, query in enumerate(JUDGED_QUERIES * 6):
            for i in range(len(PRODUCTS)):
                if (i + q) % 5 == 0:
                    writer.writerow([f"{query} {q}", f"p{i}", round(((i * 7 + q) % 4) / 3, 3)])
    save_tiny_bert(root / "tiny-bert", minilm_tokenizer)
    config = {"data": {"kind": "generic", "path": "judgments.csv", "catalog": "catalog.csv"},
              "template": {"max_tokens": 64},
              "student": {"model": str(root / "tiny-bert"), "layers": None, "loss": "pointwise", "max_steps": 300,
                          "max_pairs": None, "output": "runs/student"},
              "teacher": {"model": str(root / "tiny-bert"), "views": [], "max_steps": 120, "output": "runs/teacher"},
              "deploy": {"chunk_size_bytes": 40_000}}
    (root / "reranker.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def model_and_pipeline_names(client, prefix: str = "test") -> Iterator[dict[str, str]]:
    """For a fixture: a unique model name and pipeline name; ``client`` removes both afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {"model": f"{prefix}-model-{suffix}", "pipeline": f"{prefix}-rerank-{suffix}"}
    yield names
    ml = MLCommons(client)
    for model in ml.list_models():
        if model.name == names["model"]:
            ml.delete(model.model_id)
    client.search_pipeline.delete(id=names["pipeline"], ignore=[404])


@pytest.fixture
def unique_names(client):
    """A unique model name and pipeline name; models and pipeline are removed afterwards."""
    yield from model_and_pipeline_names(client)


def fill_index(client, index: str, mapping: str, docs: list[dict]) -> None:
    """Create ``index`` with the packaged ``mapping`` (e.g. ``ubi-events-index.json``) and bulk-load ``docs``
    (ids 0, 1, ...), refreshed; every doc must be accepted."""
    client.indices.create(index=index, body=load_json(mapping))
    if docs:
        lines = [x for i, doc in enumerate(docs) for x in ({"index": {"_index": index, "_id": str(i)}}, doc)]
        result = client.bulk(body=lines, refresh=True)
        assert not result["errors"], result


@pytest.fixture
def ubi_indexes(client) -> Iterator[dict[str, str]]:
    """Unique names for a UBI events index and a UBI queries index (not created); both deleted afterwards."""
    names = {"events": f"ubi-events-test-{uuid.uuid4().hex[:8]}", "queries": f"ubi-queries-test-{uuid.uuid4().hex[:8]}"}
    yield names
    for name in names.values():
        client.indices.delete(index=name, ignore_unavailable=True)


# ------------------------------------------------------------ a main-job project (test_run, test_readme_own_data)
RUN_QUERIES = ["cordless drill", "drill bits", "interior paint", "paint roller", "garden hose", "light bulb",
               "ceiling fan", "pipe fitting", "kitchen faucet", "wood screws", "spray paint", "impact driver",
               "shower head", "drywall anchors", "pipe wrench", "hose nozzle", "paint brush", "drill battery"]
REUSED = "unchanged since its last run"  # what `run` prints for a step it skips


def grade(query: str, title: str) -> float:
    """1 when the title holds every query word, 0.5 when some, else 0."""
    words = query.split()
    hits = sum(w in title.lower() for w in words)
    return 1.0 if hits == len(words) else 0.5 if hits else 0.0


def write_graded_judgments(path: Path) -> None:
    """query,product_id,grade for :data:`RUN_QUERIES`: each query's three best products and two fixed others."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "product_id", "grade"])
        for n, query in enumerate(RUN_QUERIES):
            ranked = sorted(range(len(PRODUCTS)), key=lambda i: -grade(query, PRODUCTS[i]))
            for i in {*ranked[:3], (n * 7) % len(PRODUCTS), (n * 11 + 5) % len(PRODUCTS)}:
                writer.writerow([query, f"p{i}", grade(query, PRODUCTS[i])])


def save_tiny_bert(folder: Path, tokenizer) -> str:
    """The tiny cross-encoder and the MiniLM tokenizer saved in ``folder``, a start for every model; its path."""
    from ..conftest import tiny_cross_encoder

    tiny_cross_encoder(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@contextmanager
def main_job_project(client, root: Path, tokenizer, prefix: str, **sections: dict[str, Any]) -> Iterator[dict]:
    """``root/reranker.yaml`` for `reranker run` with tiny models (``root/tiny-bert``) and unique cluster names
    ``<prefix>-<random>``, ``sections`` merged into the config's sections; yields the config, then removes the
    models, pipelines and index the run made."""
    tiny = save_tiny_bert(root / "tiny-bert", tokenizer)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    config: dict[str, dict[str, Any]] = {
        "template": {"fields": ["title"], "max_tokens": 32},
        "deploy": {"index": name, "model_name": name, "pipeline": name},
        "teacher": {"model": tiny, "views": [tiny], "max_steps": 3, "queries_per_batch": 4},
        "student": {"model": "teacher", "layers": 1, "max_steps": 2, "queries_per_batch": 4},
        "augment": {"top_k": 5, "queries_per_part": 3},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    (root / "reranker.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    try:
        yield config
    finally:
        ml = MLCommons(client)
        for model in ml.list_models():
            if model.name.startswith(name):
                ml.delete(model.model_id)
        for suffix in ("", "-int8", "-fp32", "-human"):
            client.search_pipeline.delete(id=name + suffix, ignore=[404])
        client.indices.delete(index=name, ignore_unavailable=True)
