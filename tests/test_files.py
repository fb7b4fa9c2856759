"""Durable atomic writes: the data is fsynced before the rename, the folder after it."""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from reranker_core.errors import OutputError
from reranker_core.files import atomic_write
from training.models import write_checkpoint


class FsyncLog:
    """Stands in for ``os.fsync``: records what each call synced and what the target held at that moment."""

    def __init__(self, target: Path, fail_on_file: OSError | None = None) -> None:
        self.target = target
        self.fail_on_file = fail_on_file
        self.calls: list[tuple[str, str, str | None]] = []  # (kind, path, target's text then)

    def __call__(self, fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        path = os.readlink(f"/proc/self/fd/{fd}")
        now = self.target.read_text() if self.target.is_file() else None
        self.calls.append((kind, path, now))
        if kind == "file" and self.fail_on_file is not None:
            raise self.fail_on_file


def test_atomic_write_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old")
    log = FsyncLog(target)
    monkeypatch.setattr(os, "fsync", log)
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    kinds = [kind for kind, _, _ in log.calls]
    assert kinds == ["file", "dir"]
    (_, file_path, before), (_, dir_path, after) = log.calls
    assert Path(file_path).parent == tmp_path and Path(file_path).name.startswith(".out.json.")
    assert before == "old"  # the temporary file was synced while the old one still stood
    assert Path(dir_path) == tmp_path and after == "new"  # the folder was synced once the rename was done


def test_atomic_write_without_durable_skips_fsync(tmp_path, monkeypatch):
    log = FsyncLog(tmp_path / "x")
    monkeypatch.setattr(os, "fsync", log)
    atomic_write(tmp_path / "x", lambda tmp: tmp.write_text("x"), durable=False)
    assert log.calls == [] and (tmp_path / "x").read_text() == "x"


def test_a_write_that_fails_half_way_leaves_the_old_file(tmp_path):
    target = tmp_path / "pairs.jsonl"
    target.write_text("old content\n")

    def write(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        atomic_write(target, write)
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]  # no temporary file left behind


def test_a_failed_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", FsyncLog(target, fail_on_file=OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OutputError, match="Input/output error"):
        atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_write_checkpoint_syncs_every_file_before_the_swap_and_the_parent_after(tmp_path, monkeypatch):
    target = tmp_path / "student"
    log = FsyncLog(target / "weights.bin")
    monkeypatch.setattr(os, "fsync", log)
    write_checkpoint(target, lambda tmp: (tmp / "weights.bin").write_bytes(b"w"), {"role": "test"})
    assert json.loads((target / "reranker.json").read_text()) == {"role": "test"}
    synced_files = {Path(p).name for kind, p, _ in log.calls if kind == "file"}
    assert synced_files == {"weights.bin", "reranker.json"}
    assert all(now is None for kind, _, now in log.calls if kind == "file")  # all before the swap
    kind, last, now = log.calls[-1]
    assert kind == "dir" and Path(last) == tmp_path and now == "w"  # the parent, after the swap


def test_a_checkpoint_put_back_from_its_old_copy_is_synced(tmp_path, monkeypatch):
    from training.checkpoints import STATE_FILE, load_state
    from training.models import ModelError, previous_copy

    ckpt = tmp_path / "ckpt"
    old = previous_copy(ckpt)
    old.mkdir()
    (old / STATE_FILE).write_text(json.dumps({"fingerprint": "another run", "step": 3, "losses": []}))
    log = FsyncLog(ckpt / STATE_FILE)
    monkeypatch.setattr(os, "fsync", log)
    with pytest.raises(ModelError, match="another config"):  # stops before touching the (absent) model
        load_state(ckpt, None, None, None, "this run")
    assert (ckpt / STATE_FILE).is_file() and not old.exists()
    assert [(kind, Path(p)) for kind, p, _ in log.calls] == [("dir", tmp_path)]


def test_torch_save_failing_on_a_full_disk_is_an_output_error_and_keeps_the_old_checkpoint(tmp_path):
    """torch.save reports a full disk as RuntimeErrors (the zip writer's, over its C++ stream's), not OSError."""
    target = tmp_path / "student.checkpoint"
    write_checkpoint(target, lambda tmp: (tmp / "w.pt").write_text("old"), {"step": 1})

    def full(tmp: Path) -> None:
        try:
            raise RuntimeError("basic_ios::clear: iostream error")
        except RuntimeError:
            raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 5056 vs 4950")

    with pytest.raises(OutputError, match="student.checkpoint failed"):
        write_checkpoint(target, full, {"step": 2})
    assert (target / "w.pt").read_text() == "old"
