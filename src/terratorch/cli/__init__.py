"""Parts of the ``terratorch`` command line: the prediction writer and streaming prediction.

The LightningCLI itself is :mod:`terratorch.cli_tools`.
"""
