"""DVC stage build_features@<model>: the processed splits tokenized for the model's tokenizer, as HF
datasets under --out/<fingerprint>/, and the feature card in metrics/features/<model>.json."""

from __future__ import annotations

import argparse

from aistudio import layout
from aistudio.cli import configure_logging, run_cli, stage_args
from aistudio.io import write_json

STAGE = "build_features"


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--num-proc",
        type=int,
        default=None,
        help="tokenizing processes (default: one per 2,000 records, up to the cores)",
    )


def main() -> int:
    args = stage_args(
        STAGE,
        __doc__,
        model="one",
        out=lambda model, _: layout.features_dir(model),
        mlflow=False,
        options=_options,
    )
    configure_logging(STAGE)
    # Imported after params are validated: a user error should not wait for (or print from) torch.
    from aistudio.features.store import build_features, feature_spec

    spec = feature_spec(args.model, args.params.training)
    card = build_features(spec, args.data, args.out, num_proc=args.options.num_proc)
    write_json(layout.feature_card(args.model), card)
    return 0


if __name__ == "__main__":
    run_cli(main)
