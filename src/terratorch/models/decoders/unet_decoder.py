"""U-Net decoder over a feature pyramid: segmentation_models_pytorch's ``UnetDecoder`` on our lists."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels
from terratorch.registry import TERRATORCH_DECODER_REGISTRY

__all__ = ["UNetDecoder"]


@TERRATORCH_DECODER_REGISTRY.register
class UNetDecoder(nn.Module):
    """U-Net decoder: smp's ``UnetDecoder`` (attribute ``decoder``) with every input map used.

    smp's decoder drops the first map of its list (an smp encoder's stride-1 input), so the finest
    map is passed twice: starting from the coarsest map, each of the ``len(channels)`` blocks
    upsamples (nearest) to the next finer map, concatenates it and applies two 3x3
    conv-norm-ReLU blocks; the last block has no skip and keeps the finest resolution. The output
    therefore has the resolution of the **finest input map**; the model upsamples it further.

    segmentation_models_pytorch is imported when the decoder is built, not with this module.

    Args:
        embed_dim: Channel list of the pyramid, finest first.
        channels: Output channels of each block, coarse to fine; one entry per feature map.
        use_batchnorm: smp's ``use_norm``: ``"batchnorm"`` (default), ``True``/``False``,
            ``"identity"``, ``"layernorm"``, ``"instancenorm"``, ``"inplace"`` or a dict.
        attention_type: smp's attention (``None`` or ``"scse"``).

    Attributes:
        out_channels: ``channels[-1]``.
    """

    def __init__(
        self,
        embed_dim: list[int],
        channels: list[int],
        use_batchnorm: bool | str | dict[str, Any] = "batchnorm",
        attention_type: str | None = None,
    ) -> None:
        if len(embed_dim) != len(channels):
            raise ValueError(
                "UNetDecoder needs one entry in channels per feature map: embed_dim has "
                f"{len(embed_dim)} maps {list(embed_dim)} but channels has {len(channels)} {list(channels)}."
            )
        super().__init__()
        from segmentation_models_pytorch.base.initialization import initialize_decoder
        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

        self.embed_dim = [int(c) for c in embed_dim]
        self.decoder = UnetDecoder(
            encoder_channels=[self.embed_dim[0], *self.embed_dim],
            decoder_channels=list(channels),
            n_blocks=len(channels),
            use_norm=use_batchnorm,
            add_center_block=False,
            attention_type=attention_type,
        )
        initialize_decoder(self.decoder)
        self.out_channels: int = int(channels[-1])

    def forward(self, x: list[Tensor]) -> Tensor:
        """``[(B, C_i, H_i, W_i)]`` finest first → ``(B, channels[-1], H_0, W_0)``."""
        check_feature_channels("UNetDecoder", self.embed_dim, x)
        return self.decoder([x[0].clone(), *x])
