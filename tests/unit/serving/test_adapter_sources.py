"""Adapter sources: only under allowed roots, only with a manifest, and every file hashed first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aistudio.bundle import MANIFEST, sha256_file
from aistudio.serving.adapter_sources import (
    ADAPTER_FORMAT,
    SourceError,
    fetch,
    local_directory,
    package_adapter,
    verify_directory,
)
from aistudio.training.adapters import ADAPTER_FILES


def _adapter(directory: Path, payload: bytes = b"weights") -> Path:
    directory.mkdir(parents=True)
    (directory / ADAPTER_FILES[0]).write_text('{"peft_type": "LORA"}')
    (directory / ADAPTER_FILES[1]).write_bytes(payload)
    return directory


def _bundle(root: Path, adapters: tuple[str, ...]) -> Path:
    files = {}
    for name in adapters:
        _adapter(root / "adapters" / name, name.encode())
        for f in ADAPTER_FILES:
            files[f"adapters/{name}/{f}"] = sha256_file(root / "adapters" / name / f)
    manifest = {"format": "aistudio-bundle/1", "model": "m", "family": "causal", "variant": "fp32",
                "adapters": list(adapters), "files": files, "evaluation": {},
                "lineage": {"git_commit": "g", "data_hash": "d", "params_hash": "p"}}  # fmt: skip
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root


def test_a_package_verifies_and_names_its_base_model(tmp_path: Path) -> None:
    package = package_adapter(_adapter(tmp_path / "raw"), tmp_path / "pkg", "m", "causal")
    manifest = json.loads((package / MANIFEST).read_text())
    assert manifest["format"] == ADAPTER_FORMAT and set(manifest["files"]) == set(ADAPTER_FILES)
    verified = verify_directory(package, "any", "pkg")
    assert verified.model == "m" and verified.directory == package
    assert verified.manifest_sha256 == sha256_file(package / MANIFEST)


def test_a_changed_byte_or_a_bare_directory_is_an_integrity_error(tmp_path: Path) -> None:
    package = package_adapter(_adapter(tmp_path / "raw"), tmp_path / "pkg", "m", "causal")
    (package / ADAPTER_FILES[1]).write_bytes(b"weightz")
    with pytest.raises(SourceError, match="sha256 mismatch") as refused:
        verify_directory(package, "x", "pkg")
    assert refused.value.kind == "integrity"
    with pytest.raises(SourceError, match="no manifest.json") as bare:
        verify_directory(tmp_path / "raw", "x", "raw")
    assert bare.value.kind == "integrity"


def test_a_bundles_adapter_is_chosen_by_name_or_as_the_only_one(tmp_path: Path) -> None:
    two = _bundle(tmp_path / "two", ("code", "creative"))
    assert verify_directory(two, "creative", "b").directory == two / "adapters" / "creative"
    assert verify_directory(two / "adapters" / "code", "whatever", "b").directory == two / "adapters" / "code"
    with pytest.raises(SourceError, match="name one"):
        verify_directory(two, "other", "b")
    one = _bundle(tmp_path / "one", ("code",))
    assert verify_directory(one, "renamed", "b").directory == one / "adapters" / "code"


def test_local_paths_must_resolve_under_an_allowed_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    _adapter(root / "inside")
    _adapter(outside / "pkg")
    (root / "link").symlink_to(outside / "pkg")
    assert local_directory(str(root / "inside"), [root]) == (root / "inside").resolve()
    for path in (outside / "pkg", root / "link", root / ".." / "outside" / "pkg"):
        with pytest.raises(SourceError, match="outside the allowed adapter roots") as refused:
            local_directory(str(path), [root])
        assert refused.value.kind == "not_allowed"
    with pytest.raises(SourceError, match="allowed_roots is empty"):
        local_directory(str(root / "inside"), [])


def test_remote_sources_need_a_tracking_uri(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="tracking_uri") as refused:
        fetch("models:/m/1", "x", [tmp_path], tracking_uri=None)
    assert refused.value.kind == "not_allowed"
