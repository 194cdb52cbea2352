"""aistudio.layout: the lowest layer, and the one place each path is spelt."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from aistudio import layout

SRC = Path(__file__).resolve().parents[2] / "src" / "aistudio"
# A string literal that spells a path a stage reads or writes.
_STAGE_PATH = re.compile(
    r"^(models|metrics|data/processed|data/features|deploy/rendered|logs|configs|k8s)(/|$)"
)


def test_layout_imports_nothing_from_the_project() -> None:
    tree = ast.parse((SRC / "layout.py").read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("aistudio")]


def test_no_other_library_module_spells_a_stage_path_as_a_path() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # Path("models/...") and friends: a second source of truth for a layout path.
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if _STAGE_PATH.match(first.value):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} Path({first.value!r})")
    assert found == []


def test_matrix_paths_nest_under_the_stage_roots() -> None:
    assert layout.lora_dir("m", "code") == layout.lora_dir("m") / "code" == Path("models/lora/m/code")
    assert layout.base_dir("m").parent == layout.BASE_MODELS_DIR
    assert layout.domain_dir("m", "code") == Path("models/domain/m/code")
    assert layout.checkpoint_dir("lora", "m", "code") == Path("models/checkpoints/lora/m/code")
    assert layout.quantized_dir("m", "4bit") == Path("models/quantized/m/4bit")
    assert layout.quantized_dir("m", "4bit", "code") == Path("models/quantized/m/domains/code/4bit")
    assert layout.quantized_dir("m", "4bit", root=Path("/x")) == Path("/x/m/4bit")
    assert layout.pretrained_dir("smollm2") == Path("models/pretrained/smollm2")
    assert layout.features_dir("m") == Path("data/features/m")
    store = layout.features_dir("m", "ab12")
    assert layout.features_split_dir(store, "test") == Path("data/features/m/ab12/test")
    assert layout.feature_card("m") == Path("metrics/features/m.json")
    assert layout.split_path(Path("d"), "train") == Path("d/train_data.jsonl")
    assert layout.stage_log("evaluate") == Path("logs/evaluate.log")
    assert layout.rendered_path("dev") == Path("deploy/rendered/dev.yaml")


def test_every_pipeline_stage_declares_its_outputs_in_the_layout() -> None:
    outputs = layout.stage_outputs("m", "d")
    assert list(outputs) == list(layout.PIPELINE_STAGES)
    assert layout.PIPELINE_STAGES.index("import_base_models") < layout.PIPELINE_STAGES.index(
        "train_base_models"
    )
    assert all(outputs.values())
    assert layout.split_path(layout.PROCESSED_DIR, "test") in outputs["prepare_data"]
    assert layout.lora_dir("m") in outputs["train_lora_adapters"]
