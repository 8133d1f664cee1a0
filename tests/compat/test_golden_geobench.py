"""Our GEO-Bench datasets against the reference's on the same geobench-written files.

Fixtures: ``tools/reference/golden_geobench.py`` (the reference's ``M*NonGeo`` datasets reading
``tests/datasets/geobench_fixture/``, which the ``geobench`` package wrote).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "geobench"
FIXTURE = ROOT / "tests" / "datasets" / "geobench_fixture"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


@pytest.fixture(scope="module")
def samples() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "samples.safetensors"))


@pytest.mark.parametrize("case", sorted(MANIFEST["cases"]))
def test_samples_equal_the_reference(case, samples):
    import terratorch.datasets as datasets

    spec = MANIFEST["cases"][case]
    dataset = getattr(datasets, spec["class"])(data_root=str(FIXTURE / spec["benchmark"]), **spec["kwargs"])
    assert len(dataset) == spec["len"]
    for index in range(len(dataset)):
        ours = dataset[index]
        theirs = {k.split("/", 2)[2]: v for k, v in samples.items() if k.startswith(f"{case}/{index}/")}
        assert set(theirs) <= set(ours), (sorted(theirs), sorted(ours))
        for key, value in theirs.items():
            mine = torch.as_tensor(ours[key])
            assert mine.shape == value.shape, (case, index, key)
            torch.testing.assert_close(
                mine.to(value.dtype), value, rtol=0, atol=0, msg=f"{case}[{index}].{key}"
            )


@pytest.mark.parametrize("name", sorted(MANIFEST["signatures"]))
def test_constructor_parameters_and_defaults_equal_the_reference(name):
    import terratorch.datamodules as datamodules
    import terratorch.datasets as datasets

    cls = getattr(datamodules if name.endswith("DataModule") else datasets, name)
    params = inspect.signature(cls.__init__).parameters.values()
    ours = {p.name: p.default for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD}
    for param, default in MANIFEST["signatures"][name]:
        assert param in ours, f"{name} lacks the reference's parameter {param!r}"
        mine = ours[param]
        mine = None if mine is inspect.Parameter.empty else (list(mine) if isinstance(mine, tuple) else mine)
        if param == "bands" and mine is None and default is not None:
            # ours spells "the dataset's default bands" as None; they must be the reference's list
            mine = list(cls.default_bands())
        assert json.loads(json.dumps(mine, default=str)) == default, (name, param, mine, default)
