"""Tests for terratorch.iterate.efficiency.measure_efficiency."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from terratorch.iterate.efficiency import count_flops, count_parameters, measure_efficiency


class TwoInputNet(nn.Module):
    """A conv net whose forward takes a keyword argument, like models with metadata inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.head = nn.Linear(8, 2, bias=False)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3))) * scale


def test_parameters_and_flops_match_hand_counts():
    model = TwoInputNet()
    total, trainable = count_parameters(model)
    assert total == trainable == 3 * 8 * 9 + 8 * 2
    batch = torch.randn(2, 3, 16, 16)
    conv_macs = 8 * 16 * 16 * 3 * 9
    linear_macs = 8 * 2
    assert count_flops(model, batch) == 2 * 2 * (conv_macs + linear_macs)


def test_measure_efficiency_reports_per_sample_figures_and_restores_the_model():
    model = TwoInputNet().train()
    model.head.weight.requires_grad_(False)
    result = measure_efficiency(model, (2, 3, 16, 16), warmup=1, iters=2, model_kwargs={"scale": 2.0})
    assert set(result) >= {"params", "gflops", "samples_per_s", "peak_mem_mb"}
    assert result["params"] == 232 and result["trainable_params"] == 216
    assert result["gflops"] == pytest.approx(2 * (8 * 16 * 16 * 27 + 16) / 1e9)
    assert result["samples_per_s"] > 0 and result["latency_ms"] > 0 and result["batch_size"] == 2
    weights_and_input_mb = (232 + 2 * 3 * 16 * 16) * 4 / 2**20
    assert math.isnan(result["peak_mem_mb"]) or result["peak_mem_mb"] >= weights_and_input_mb
    assert model.training  # mode restored
    assert all(isinstance(v, float) for v in result.values())  # loggable as MLflow metrics


def test_tied_parameters_count_once():
    embed = nn.Linear(4, 4, bias=False)
    model = nn.Sequential(embed, embed)
    assert count_parameters(model) == (16, 16)


def test_five_dimensional_inputs_are_supported():
    model = nn.Conv3d(2, 4, kernel_size=1)
    result = measure_efficiency(model, (1, 2, 3, 8, 8), warmup=0, iters=1)
    assert result["gflops"] == pytest.approx(2 * 2 * 4 * 3 * 8 * 8 / 1e9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_memory_includes_activations():
    model = nn.Conv2d(3, 64, kernel_size=3, padding=1)
    result = measure_efficiency(model, (4, 3, 128, 128), device="cuda", warmup=1, iters=2)
    activation_mb = 4 * 64 * 128 * 128 * 4 / 2**20
    assert result["peak_mem_mb"] >= activation_mb
    assert next(model.parameters()).device.type == "cpu"  # moved back


def test_bad_arguments_are_reported():
    model = TwoInputNet()
    with pytest.raises(ValueError, match=r"input_shape must be a batch shape.*got \(3,\)"):
        measure_efficiency(model, (3,))
    with pytest.raises(ValueError, match=r"positive sizes; got \(1, 3, 0, 16\)"):
        measure_efficiency(model, (1, 3, 0, 16))
    with pytest.raises(ValueError, match="Need iters >= 1 and warmup >= 0; got iters=0"):
        measure_efficiency(model, (1, 3, 16, 16), iters=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="exact CPU peak needs Linux /proc")
def test_cpu_peak_memory_sees_a_large_activation():
    # 2 x 64 x 256 x 256 float32 = 32 MiB activation, allocated with fresh pages (mmap)
    model = nn.Conv2d(3, 64, kernel_size=1)
    result = measure_efficiency(model, (2, 3, 256, 256), warmup=0, iters=1)
    assert result["peak_mem_mb"] >= 32


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="exact CPU peak needs Linux /proc")
def test_cpu_peak_memory_is_not_hidden_by_recycled_heap_pages():
    # Freeing ~32 MiB blocks raises glibc's mmap threshold, so the next 32 MiB activation comes from
    # heap pages that are still resident; the measurement must return them to the OS first.
    for _ in range(3):
        blocks = [torch.ones(31 * 2**20 // 4) for _ in range(6)]
        del blocks
        blocks = [torch.ones(33 * 2**20 // 4) for _ in range(2)]
        del blocks
    model = nn.Conv2d(3, 64, kernel_size=1)
    result = measure_efficiency(model, (2, 3, 256, 256), warmup=0, iters=1)
    assert result["peak_mem_mb"] >= 32
