"""The ``terratorch`` command line, one concept per module.

* :mod:`~terratorch.cli.lightning`: the LightningCLI subclass (``MyLightningCLI``), ``MyTrainer``,
  ``build_lightning_cli``, default checkpointing and the ``fit|validate|test|predict`` entry point;
* :mod:`~terratorch.cli.callbacks`: checkpoint and config-saving callbacks;
* :mod:`~terratorch.cli.errors`: error messages, exit codes of exceptions;
* :mod:`~terratorch.cli.custom_modules`: imports done before the config is parsed;
* :mod:`~terratorch.cli.config_compat`: the reference's transform spellings in configs;
* :mod:`~terratorch.cli.statistics`: ``terratorch compute_statistics``;
* :mod:`~terratorch.cli.inference`: ``LightningInferenceModel`` (predicting from Python);
* :mod:`~terratorch.cli.prediction_writer`, :mod:`~terratorch.cli.custom_writer`: GeoTIFF output.

:mod:`terratorch.cli_tools` re-exports the reference's names from these modules lazily. This
package itself imports nothing heavy.
"""
