"""Bags of models: per-source weighted averages, member checks, catalog entries."""

from __future__ import annotations

import pytest
import torch

from unweave.inference.bag import Bag
from unweave.inference.separator import Separator
from unweave.pretrained import catalog

from .conftest import IdentityModel


class Scaled(IdentityModel):
    """source i = scale * (i + 1) * mixture, with a valid length that pads to multiples of 7."""

    def __init__(self, scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def valid_length(self, length: int) -> int:
        return -(-length // 7) * 7

    def forward(self, mix):
        assert mix.shape[-1] % 7 == 0, "the bag pads each member to its valid length"
        return self.scale * super().forward(mix)


def test_bag_averages_each_source_with_its_weights():
    mix = torch.randn(2, 2, 100)
    bag = Bag([Scaled(1.0), Scaled(3.0)], weights=[[1, 1], [1, 0]])
    out = bag(mix)
    assert out.shape == (2, 2, 2, 100) and bag.valid_length(100) == 100
    torch.testing.assert_close(out[:, 0], 2.0 * mix)  # (1 + 3) / 2 * 1
    torch.testing.assert_close(out[:, 1], 2.0 * mix)  # member 2 left out: 1 * 2
    assert bag.segment == 0.5 and bag.sources == ("a", "b")


def test_a_member_contributes_the_sources_it_shares_by_name():
    mix = torch.randn(1, 2, 50)
    four = IdentityModel(sources=("drums", "bass", "other", "vocals"))  # i + 1 = 1, 2, 3, 4
    two = IdentityModel(sources=("vocals", "accompaniment"))  # vocals = 1 * mixture
    bag = Bag([four, two], weights=[[1, 1, 1, 1], [0, 0, 0, 3]])
    out = bag(mix)
    assert bag.sources == four.sources and out.shape == (1, 4, 2, 50)
    for i in range(3):
        torch.testing.assert_close(out[:, i], (i + 1) * mix)
    torch.testing.assert_close(out[:, 3], (4 * 1 + 1 * 3) / 4 * mix)
    default = Bag([four, two])  # default weights: 1 where a member has the source
    torch.testing.assert_close(default(mix)[:, 3], 2.5 * mix)
    skipped = Bag([four, two], weights=[[1, 1, 1, 1], [0, 0, 0, 0]])
    skipped(mix)
    assert two.calls == 2, "a member with no weight is not run"


@pytest.mark.parametrize("models,weights,message", [
    ([], None, "at least one"),
    ([IdentityModel(), IdentityModel(sample_rate=16000)], None, "members differ"),
    ([IdentityModel(), IdentityModel(sources=("x", "y"))], None, "none of the bag's sources"),
    ([IdentityModel(), IdentityModel(sources=("b", "y"))], [[1, 1], [1, 1]], "no source 'a'"),
    ([IdentityModel(), IdentityModel()], [[1, 1]], "expected 2 rows"),
    ([IdentityModel(), IdentityModel()], [[1, 0], [1, 0]], "non-zero"),
])
def test_bad_bags_are_refused(models, weights, message):
    with pytest.raises(ValueError, match=message):
        Bag(models, weights)


def test_catalog_bag_loads_its_members(monkeypatch):
    entries = {
        "one": {"name": "one", "task": "music", "arch": "conv_tasnet", "kwargs": {}, "weights": None},
        "two": {"name": "two", "task": "music", "arch": "conv_tasnet", "kwargs": {}, "weights": None},
        "both": {"name": "both", "task": "music", "bag": {"models": ["one", "two"],
                                                          "weights": None}},
    }
    monkeypatch.setattr(catalog, "catalog_entries", lambda: entries)
    bag = catalog.load_model("both")
    assert isinstance(bag, Bag) and len(bag.members) == 2 and bag.trained is False
    rows = {r["name"]: r for r in catalog.list_models(include_tiny=False)}
    assert rows["both"]["arch"] == "bag" and rows["both"]["members"] == ["one", "two"]
    assert rows["both"]["params"] == rows["one"]["params"] + rows["two"]["params"]
    entries["broken"] = {"name": "broken", "task": "music", "bag": {"models": ["one", "nope"]}}
    with pytest.raises(catalog.ModelError, match="nope"):
        catalog.load_model("broken")
    mix = torch.randn(2, 4000) * 0.1
    stems = Separator(bag).separate_tensor(mix, bag.sample_rate)
    assert set(stems) == set(bag.sources)
