"""``terratorch compute_statistics``: per-band means/stds (and the label histogram) of a datamodule.

It has its own small parser (only the ``data`` section of a config is used) so that a fit config
works as it is and no model or trainer is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from terratorch import exit_codes
from terratorch.cli.custom_modules import import_class_modules, import_custom_modules_from_args
from terratorch.cli.errors import ConfigError, UsageError, explain_instantiation_error, explain_parse_error

__all__ = ["compute_statistics_main"]

# Config sections compute_statistics accepts but does not use (a fit config works as it is).
_IGNORED_KEYS = (
    "model",
    "trainer",
    "optimizer",
    "lr_scheduler",
    "seed_everything",
    "ckpt_path",
    "weights_only",
    "return_predictions",
    "custom_modules_path",
    "predict_output_dir",
    "output_file_prefix",
    "out_dtype",
    "predict_streaming",
    "deploy_config_file",
)


def compute_statistics_main(args: Sequence[str]) -> int:
    """``terratorch compute_statistics -c config.yaml``: print per-band means/stds as YAML.

    Only the ``data`` section of the config is used (other sections may be present). The printed
    ``means``/``stds`` are ready to paste into the datamodule config; ``--output FILE`` also writes them.

    Returns:
        :data:`terratorch.exit_codes.OK`.

    Raises:
        ConfigError: The config is invalid (:class:`UsageError` for an unknown command-line flag).
    """
    from typing import Any

    from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser
    from lightning import LightningDataModule

    from terratorch.cli.config_compat import register_loader
    from terratorch.cli.errors import is_unknown_flag, naming_file
    from terratorch.datasets.statistics import compute_statistics as datamodule_statistics
    from terratorch.datasets.statistics import format_statistics

    import_custom_modules_from_args(args)
    import_class_modules()
    parser = ArgumentParser(
        prog="terratorch compute_statistics", exit_on_error=False, parser_mode=register_loader()
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="LightningCLI config file.")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True, instantiate=True)
    parser.add_argument("--max_samples", type=int | None, default=None, help="Only the first N images.")
    parser.add_argument("--output", type=str | None, default=None, help="Also write the YAML here.")
    for ignored in _IGNORED_KEYS:
        parser.add_argument(f"--{ignored}", type=Any, default=None, help="(ignored)")
    try:
        config = parser.parse_args(list(args))
    except ArgumentError as error:
        kind = UsageError if is_unknown_flag(str(error)) else ConfigError
        raise kind(explain_parse_error(str(error), parser)) from None
    try:
        datamodule = parser.instantiate(config).data
    except ValueError as error:
        raise explain_instantiation_error(error) from error.__cause__
    stats = datamodule_statistics(datamodule, max_samples=config.max_samples)
    text = format_statistics(stats)
    print(text, end="")
    if config.output:
        with naming_file(config.output, "the statistics"):
            Path(config.output).write_text(text)
    return exit_codes.OK
