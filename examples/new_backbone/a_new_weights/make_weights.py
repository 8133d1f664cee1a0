"""Write a stand-in checkpoint for example (a): a timm ResNet-18 state dict saved with ``torch.save``.

In real use the file holds *your* weights (e.g. continued pretraining on your own imagery); here
we save a randomly initialised ResNet-18 so the example runs offline::

    python examples/new_backbone/a_new_weights/make_weights.py weights/resnet18_custom.pth
"""

from __future__ import annotations

import sys
from pathlib import Path

import timm
import torch


def main(path: str = "weights/resnet18_custom.pth") -> Path:
    """Save a 3-band ResNet-18 classifier state dict to ``path`` (timm adapts it to 6 bands on load)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), target)
    print(f"wrote {target}")
    return target


if __name__ == "__main__":
    main(*sys.argv[1:])
