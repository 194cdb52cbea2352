"""The serving bundle: built from a tiny model and two LoRA adapters, hashed, verified, loaded back."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aistudio.bundle import (
    BUNDLE_FORMAT,
    MANIFEST,
    build_bundle,
    load_bundle,
    read_manifest,
    sha256_file,
    verify_bundle,
)
from aistudio.config import LoraConfig, QuantizationConfig, TinyArchitecture
from aistudio.errors import UserError
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.loading import ModelCard, save_model_dir
from aistudio.modeling.prompts import Example
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.quantization.quantize import load_variant, quantize_variant
from aistudio.training.adapters import AdapterSet, attach_lora, save_adapter

pytestmark = pytest.mark.slow

TEXTS = [
    f"{verb} the {noun} number {i} and return {i * 7 % 13} after {i % 9} steps"
    for i, (verb, noun) in enumerate(
        (v, n) for v in ("sort", "count", "print", "parse", "merge") for n in ("list", "table", "file", "row")
    )
    for _ in range(10)
]
TEXTS = [f"{text} ({k})" for k, text in enumerate(TEXTS)]  # 200 distinct strings
LORA = LoraConfig(r=4, alpha=8, dropout=0.0)
PROMPTS = ["sort the list number 3", "count the words", "merge the table number 12 and return"]
# Different targets and step counts: the two adapters must end up with different weights.
ADAPTERS = {"code": ("YES YES YES", 1), "summarization": ("no no no no", 2)}
LINEAGE = {
    "git_commit": "0" * 40,
    "data_hash": "d" * 32,
    "params_hash": "p" * 16,
    "feature_fingerprint": "f" * 16,
    "run_ids": {"lora": "r1"},
}
EVALUATION = {"gate_passed": True, "perplexity": 12.5, "domains": {"code": {"rouge_l": 0.4}}}


@dataclass
class Tiny:
    """A saved tiny base, its adapters, and what the in-memory models answered before saving."""

    family: ModelFamily
    tokenizer: PreTrainedTokenizerBase
    base: PreTrainedModel
    base_dir: Path
    adapter_dirs: dict[str, Path]
    batch: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    greedy: dict[str, list[str]] = field(default_factory=dict)


def _batch(family: ModelFamily, tokenizer: PreTrainedTokenizerBase, target: str) -> dict[str, torch.Tensor]:
    encoded = [family.encode(Example(p, target), tokenizer, 64, loss_on_output_only=True) for p in PROMPTS]
    return family.collate([e for e in encoded if e is not None], tokenizer)


def _train(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int) -> None:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def make_tiny(root: Path, family_name: str) -> Tiny:
    family = family_for(family_name)
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400, min_frequency=1, special=family.special_tokens)
    base = family.build_tiny(TinyArchitecture(), tokenizer, seed=0).eval()
    base_dir = root / "base"
    save_model_dir(base_dir, base, tokenizer, ModelCard(model="tiny", family=family_name, stage="test"))
    tiny = Tiny(family, tokenizer, base, base_dir, {}, _batch(family, tokenizer, "YES no"))
    with torch.no_grad():
        tiny.logits["base"] = base(**tiny.batch).logits
    tiny.greedy["base"] = family.generate(base, tokenizer, PROMPTS, max_new_tokens=8)
    for name, (target, steps) in ADAPTERS.items():
        peft_model = attach_lora(copy.deepcopy(base), family, LORA, adapter_name=name)
        _train(peft_model, _batch(family, tokenizer, target), steps)
        tiny.adapter_dirs[name] = save_adapter(peft_model, root / "adapters" / name, name)
        with torch.no_grad():
            tiny.logits[name] = peft_model(**tiny.batch).logits
        tiny.greedy[name] = family.generate(peft_model, tokenizer, PROMPTS, max_new_tokens=8)
    return tiny


def _build(tiny: Tiny, out: Path, **overrides) -> object:
    kwargs = dict(
        base_dir=tiny.base_dir,
        adapters=tiny.adapter_dirs,
        model="tiny",
        family=tiny.family.name,
        variant="fp32",
        evaluation=EVALUATION,
        lineage=LINEAGE,
    )
    return build_bundle(out, **{**kwargs, **overrides})


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return make_tiny(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)


@pytest.fixture(scope="module")
def bundle(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"bundle-{tiny.family.name}") / "bundle"
    _build(tiny, out)
    return out


@pytest.fixture
def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_loaded_bundle_matches_the_in_memory_model_for_every_adapter(tiny: Tiny, bundle: Path) -> None:
    loaded = load_bundle(bundle)
    assert isinstance(loaded.model, AdapterSet)
    assert loaded.adapter_names == tuple(ADAPTERS)
    assert loaded.family.name == tiny.family.name
    assert not torch.allclose(tiny.logits["code"], tiny.logits["summarization"])  # the check has teeth
    for name in ("base", *ADAPTERS):
        loaded.model.use(name)
        logits = loaded.model.forward(tiny.batch).logits
        torch.testing.assert_close(logits, tiny.logits[name], rtol=1e-5, atol=1e-5, msg=f"logits of {name}")
        assert loaded.model.generate(loaded.tokenizer, PROMPTS, max_new_tokens=8) == tiny.greedy[name], name


def test_manifest_pins_every_file_and_records_lineage_and_evaluation(tiny: Tiny, bundle: Path) -> None:
    manifest = verify_bundle(bundle)
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(manifest.files) == sorted(set(on_disk) - {MANIFEST})
    assert all(sha256_file(bundle / rel) == digest for rel, digest in manifest.files.items())
    assert {"base/config.json", "base/model.safetensors", "base/aistudio.json"} <= set(manifest.files)
    for name in ADAPTERS:
        assert {f"adapters/{name}/adapter_config.json", f"adapters/{name}/adapter_model.safetensors"} <= set(
            manifest.files
        )
    raw = json.loads((bundle / MANIFEST).read_text())
    assert raw["format"] == BUNDLE_FORMAT
    assert (raw["model"], raw["family"], raw["variant"]) == ("tiny", tiny.family.name, "fp32")
    assert raw["adapters"] == list(ADAPTERS)
    assert raw["lineage"] == LINEAGE
    assert raw["evaluation"] == EVALUATION


@pytest.mark.parametrize(
    "rel", ["base/model.safetensors", "adapters/code/adapter_model.safetensors", "base/config.json"]
)
def test_a_flipped_byte_is_refused_naming_the_file(bundle_copy: Path, rel: str) -> None:
    _flip_a_byte(bundle_copy / rel)
    expected = f"bundle {bundle_copy}: sha256 mismatch for {rel} — refusing to load"
    with pytest.raises(UserError) as err:
        verify_bundle(bundle_copy)
    assert err.value.problems == [expected]
    with pytest.raises(UserError, match="sha256 mismatch"):
        load_bundle(bundle_copy)


def test_missing_files_and_unlisted_weights_are_refused_but_a_late_reference_profile_is_not(
    bundle_copy: Path,
) -> None:
    (bundle_copy / "reference_profile.json").write_text("{}")  # the server team adds it after the build
    verify_bundle(bundle_copy)
    (bundle_copy / "adapters" / "code" / "adapter_config.json").unlink()
    shutil.copy(bundle_copy / "base" / "model.safetensors", bundle_copy / "base" / "model-extra.safetensors")
    with pytest.raises(UserError) as err:
        verify_bundle(bundle_copy)
    assert err.value.problems == [
        f"bundle {bundle_copy}: missing file adapters/code/adapter_config.json — refusing to load",
        f"bundle {bundle_copy}: unlisted file base/model-extra.safetensors — refusing to load",
    ]


def test_pickle_files_are_refused_on_the_way_in_and_out(
    tiny: Tiny, tmp_path: Path, bundle_copy: Path
) -> None:
    base = Path(shutil.copytree(tiny.base_dir, tmp_path / "base"))
    torch.save({"step": 1}, base / "training_args.bin")
    with pytest.raises(UserError, match=r"training_args\.bin .*pickle-based file; bundles hold safetensors"):
        _build(tiny, tmp_path / "out", base_dir=base)
    assert not (tmp_path / "out").exists()
    # A pickle under an innocent name is caught by its content, not only by its suffix.
    disguised = tmp_path / "profile.json"
    torch.save({"mean": 0.0}, disguised, _use_new_zipfile_serialization=False)
    with pytest.raises(UserError, match="pickle-based file"):
        _build(tiny, tmp_path / "out", extra_files={"reference_profile.json": disguised})
    (bundle_copy / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UserError, match=r"evil\.pkl is a pickle-based file"):
        verify_bundle(bundle_copy)


def test_extra_files_are_hashed_and_a_bundle_without_adapters_loads_the_plain_model(
    tiny: Tiny, tmp_path: Path
) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"length_mean": 7.5}))
    manifest = _build(tiny, tmp_path / "plain", adapters={}, extra_files={"reference_profile.json": profile})
    assert manifest.files["reference_profile.json"] == sha256_file(profile)
    loaded = load_bundle(tmp_path / "plain")
    assert loaded.adapter_names == () and not isinstance(loaded.model, AdapterSet)
    with torch.no_grad():
        logits = loaded.model(**tiny.batch).logits
    torch.testing.assert_close(logits, tiny.logits["base"], rtol=1e-5, atol=1e-5)


# Quantization is family-agnostic at the bundle level: the causal model covers the variant path.
@pytest.mark.parametrize("tiny", ["causal"], indirect=True)
@pytest.mark.parametrize("variant", ["dynamic", "8bit", "4bit"])
def test_a_quantized_bundle_serves_what_load_variant_serves(tiny: Tiny, tmp_path: Path, variant: str) -> None:
    outcome = quantize_variant(tiny.base_dir, variant, QuantizationConfig(), tmp_path / variant)
    if not outcome.ok:
        pytest.skip(f"{variant} unavailable here: {outcome.reason}")
    with pytest.raises(UserError, match=f"holds the {variant} variant, but the bundle says 'fp32'"):
        _build(tiny, tmp_path / "mislabelled", base_dir=outcome.directory)
    _build(tiny, tmp_path / "bundle", base_dir=outcome.directory, variant=variant)
    loaded = load_bundle(tmp_path / "bundle")
    model, _, _, family = load_variant(outcome.directory)
    reference = AdapterSet.load(model, family, tiny.adapter_dirs)
    device = next(reference.model.parameters()).device
    batch = {k: v.to(device) for k, v in tiny.batch.items()}
    for name in ("base", *ADAPTERS):
        loaded.model.use(name)
        reference.use(name)
        torch.testing.assert_close(loaded.model.forward(batch).logits, reference.forward(batch).logits)


def test_inputs_that_do_not_belong_together_are_refused(tiny: Tiny, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds model 'tiny', but the bundle is for 'phi2'"):
        _build(tiny, tmp_path / "a", model="phi2")
    other = "seq2seq" if tiny.family.name == "causal" else "causal"
    with pytest.raises(UserError, match=f"bundle says family '{other}'"):
        _build(tiny, tmp_path / "b", family=other)
    with pytest.raises(UserError, match=r"lineage\.data_hash is required"):
        _build(tiny, tmp_path / "c", lineage={k: v for k, v in LINEAGE.items() if k != "data_hash"})
    with pytest.raises(UserError, match="variant must be one of"):
        _build(tiny, tmp_path / "d", variant="3bit")
    with pytest.raises(UserError, match="lacks adapter_config.json, adapter_model.safetensors"):
        _build(tiny, tmp_path / "e", adapters={"code": tiny.base_dir})
    assert not any((tmp_path / d).exists() for d in "abcde")


def test_rebuilding_replaces_the_bundle_and_a_non_bundle_is_refused(tiny: Tiny, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    _build(tiny, out, adapters={})
    (out / "stale.safetensors").write_bytes(b"old")
    # Metrics arrive as tensor/numpy scalars; the manifest stores plain JSON numbers.
    manifest = _build(tiny, out, evaluation={"gate_passed": False, "perplexity": torch.tensor(2.5)})
    assert not (out / "stale.safetensors").exists()
    assert manifest.evaluation == read_manifest(out).evaluation == {"gate_passed": False, "perplexity": 2.5}
    assert read_manifest(out).adapters == list(ADAPTERS)
    with pytest.raises(UserError, match="no manifest.json — not a serving bundle"):
        verify_bundle(tiny.base_dir)
