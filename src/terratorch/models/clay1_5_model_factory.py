"""``Clay1_5ModelFactory``: models on the Clay v1.5 encoder, or the Clay v1.5 MAE for pre-training.

Two spellings:

* fine-tuning (ours): ``backbone`` is a ``clay_v15_*`` name (or a built backbone); the result is the
  same kind of model ``ClayModelFactory`` builds, whose ``forward`` returns ``ModelOutput``;
* pre-training (TerraTorch 1.2's only one): ``metadata`` (Clay's per-platform ``metadata.yaml``) and
  the :class:`~terratorch.models.backbones.clay_v15.model.ClayMAE` arguments (``mask_ratio``,
  ``patch_size``, ``teacher``, ``dim``, ...) are given; ``backbone`` and ``decoder`` are ignored, as in
  1.2, and a :class:`ModelWrapper` around the MAE is returned, whose ``forward(x)`` gives the losses
  ``(loss, reconstruction_loss, representation_loss)``.

Fixed in the pre-training wrapper (1.2 spelling still accepted): ``platform`` may be a plain name
(1.2 took its first character as the platform); metadata of the batch size actually fed (1.2 built
zeros for the ``batch_size`` given at construction); ``checkpoint_path`` loads a Clay v1.5 Lightning
checkpoint into the MAE (1.2 ignored it); ``channels()`` works (1.2 read an attribute it never set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.clay_model_factory import build_clay_model
from terratorch.models.encoder_decoder_factory import parameter_names
from terratorch.models.model import AuxiliaryHead, Model, ModelFactory, register_factory

__all__ = ["Clay1_5ModelFactory", "ModelWrapper", "load_clay_mae_checkpoint"]


class ModelWrapper(nn.Module):
    """Feeds an image batch to a :class:`ClayMAE` as a datacube (zero date and location).

    Args:
        batch_size: Kept for 1.2 configs; the metadata follow the batch actually fed.
        bands: Kept for 1.2 configs (the MAE takes the wavelengths of ``platform`` from its metadata).
        platform: Platform name in the MAE's metadata (a list, as 1.2 expected, or a plain name).
        model: The MAE.
    """

    def __init__(
        self, batch_size: int | None, bands: Sequence[Any], platform: str | Sequence[str], model: nn.Module
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.bands = list(bands)
        self.platform = platform
        self.model = model

    def channels(self) -> tuple[int, int]:
        """``(1, encoder width)``: one class-token embedding per sample."""
        return (1, int(self.model.encoder.dim))

    def forward(self, x: Tensor, **kwargs: Any) -> Any:
        """The MAE losses for ``x`` ``[B, C, H, W]``; ``time``/``latlon`` ``[B, 4]`` may be given."""
        batch = x.shape[0]
        platform = kwargs.get("platform", self.platform)
        datacube = {
            "pixels": x,
            "time": kwargs.get("time", torch.zeros(batch, 4, device=x.device)),
            "latlon": kwargs.get("latlon", torch.zeros(batch, 4, device=x.device)),
            "platform": [platform] if isinstance(platform, str) else list(platform),
        }
        return self.model(datacube)


def load_clay_mae_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a Clay v1.5 Lightning checkpoint (``model.encoder.*``, ``model.decoder.*``, ``model.proj.*``,
    optionally ``model.teacher.*``) into a :class:`ClayMAE`; Matryoshka heads (``mrl.*``) are skipped."""
    from terratorch.models.weights import load_state_dict_into, read_checkpoint

    state = {k.removeprefix("model."): v for k, v in read_checkpoint(path).items()}
    state = {k: v for k, v in state.items() if not k.startswith("mrl.")}
    load_state_dict_into(model, state, source=repr(str(path)), ignore_missing=("teacher.",))


@register_factory
class Clay1_5ModelFactory(ModelFactory):  # noqa: N801 - the reference release's name
    """Build a model on the Clay v1.5 encoder, or (with ``metadata``) the Clay v1.5 MAE (see the module)."""

    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | nn.Module,
        in_channels: int,
        bands: Sequence[Any] = (),
        num_classes: int | None = None,
        pretrained: bool = True,
        num_frames: int = 1,
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        aux_decoders: list[AuxiliaryHead] | None = None,
        rescale: bool = True,
        checkpoint_path: str | None = None,
        **kwargs: Any,
    ) -> Model | ModelWrapper:
        """Build the model (arguments as for ``ClayModelFactory``).

        With ``metadata`` in ``kwargs`` the MAE path is taken: ``batch_size`` and ``platform`` go to the
        :class:`ModelWrapper`, everything else to ``ClayMAE`` (``teacher_pretrained=False`` keeps its
        timm teacher random, e.g. offline).
        """
        if "metadata" in kwargs:
            return self._pretraining_model(bands, checkpoint_path, dict(kwargs))
        return build_clay_model(
            type(self).__name__,
            task=task,
            backbone=backbone,
            decoder=decoder,
            bands=bands,
            num_classes=num_classes,
            pretrained=pretrained,
            num_frames=num_frames,
            prepare_features_for_image_model=prepare_features_for_image_model,
            aux_decoders=aux_decoders,
            rescale=rescale,
            checkpoint_path=checkpoint_path,
            kwargs=kwargs,
            known=parameter_names(self.build_model),
        )

    @staticmethod
    def _pretraining_model(
        bands: Sequence[Any], checkpoint_path: str | None, kwargs: dict[str, Any]
    ) -> ModelWrapper:
        from terratorch.models.backbones.clay_v15.model import ClayMAE

        batch_size = kwargs.pop("batch_size", None)
        platform = kwargs.pop("platform", None)
        if platform is None:
            raise ValueError("Clay1_5ModelFactory with metadata needs platform=<a platform of the metadata>.")
        if not isinstance(kwargs["metadata"], Mapping):
            raise TypeError(
                f"metadata must be a mapping of platforms, got {type(kwargs['metadata']).__name__}."
            )
        model = ClayMAE(**kwargs)
        if checkpoint_path:
            load_clay_mae_checkpoint(model, checkpoint_path)
        return ModelWrapper(batch_size, bands, platform, model)
