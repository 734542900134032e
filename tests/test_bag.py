"""Bags of models (per-source weighted averages) and cascades: member checks, catalog entries."""

from __future__ import annotations

import pytest
import torch

from unweave.inference.bag import Bag
from unweave.inference.cascade import Cascade
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


class Fractions(Scaled):
    """source i = fractions[i] * mixture, padding to multiples of 7 like ``Scaled``."""

    def __init__(self, sources, fractions) -> None:
        super().__init__(1.0, sources=sources)
        self.fractions = fractions

    def forward(self, mix):
        assert mix.shape[-1] % 7 == 0, "the cascade pads each model to its valid length"
        self.calls += 1
        return torch.stack([f * mix for f in self.fractions], dim=1)


def test_cascade_separates_the_rest_after_taking_the_source_out():
    mix = torch.randn(2, 2, 100)
    first = Fractions(("vocals", "accompaniment"), (0.25, 0.75))
    then = Fractions(("drums", "bass", "other", "vocals"), (0.5, 0.25, 0.2, 0.05))
    cascade = Cascade(first, then)
    out = cascade(mix)
    assert cascade.sources == then.sources and out.shape == (2, 4, 2, 100)
    rest = 0.75 * mix  # what the stems model sees
    for i, f in enumerate((0.5, 0.25, 0.2)):
        torch.testing.assert_close(out[:, i], f * rest)
    # the vocals it still finds there join the first model's
    torch.testing.assert_close(out[:, 3], 0.25 * mix + 0.05 * rest)
    torch.testing.assert_close(out.sum(1), mix)
    assert cascade.valid_length(100) == 100 and first.calls == then.calls == 1


def test_cascade_appends_the_source_the_second_model_lacks():
    mix = torch.randn(1, 2, 30)
    cascade = Cascade(Fractions(("voice", "rest"), (0.4, 0.6)), Fractions(("a", "b"), (0.5, 0.5)),
                      source="voice")
    out = cascade(mix)
    assert cascade.sources == ("a", "b", "voice")
    torch.testing.assert_close(out[:, 0], 0.3 * mix)
    torch.testing.assert_close(out[:, 2], 0.4 * mix)


@pytest.mark.parametrize("first,then,message", [
    (IdentityModel(sources=("a", "b")), IdentityModel(), "no source 'vocals'"),
    (IdentityModel(sources=("vocals", "x")), IdentityModel(sample_rate=16000), "models differ"),
    (IdentityModel(sources=("vocals", "x")), IdentityModel(audio_channels=1), "models differ"),
])
def test_bad_cascades_are_refused(first, then, message):
    with pytest.raises(ValueError, match=message):
        Cascade(first, then)


def test_catalog_cascade_runs_a_bag_on_what_the_first_model_leaves(monkeypatch):
    four = {"arch": "conv_tasnet", "weights": None,
            "kwargs": {"sources": ["drums", "bass", "other", "vocals"]}}
    entries = {
        "voc": {"name": "voc", "task": "vocals", "arch": "conv_tasnet", "weights": None,
                "kwargs": {"sources": ["vocals", "accompaniment"]}},
        "one": {"name": "one", "task": "music", **four},
        "two": {"name": "two", "task": "music", **four},
        "both": {"name": "both", "task": "music", "bag": {"models": ["one", "two"]}},
        "casc": {"name": "casc", "task": "music", "cascade": {"first": "voc", "then": "both"},
                 "refine": "spatial"},
    }
    monkeypatch.setattr(catalog, "catalog_entries", lambda: entries)
    model = catalog.load_model("casc")
    assert isinstance(model, Cascade) and isinstance(model.then, Bag)
    assert model.trained is False and model.sources == ("drums", "bass", "other", "vocals")
    rows = {r["name"]: r for r in catalog.list_models(include_tiny=False)}
    assert rows["casc"]["arch"] == "cascade" and rows["casc"]["members"] == ["voc", "both"]
    assert rows["casc"]["params"] == rows["voc"]["params"] + rows["both"]["params"]
    assert rows["casc"]["trained"] is False and rows["casc"]["refine"] == "spatial"
    mix = torch.randn(2, 4000) * 0.1
    stems = Separator(model).separate_tensor(mix, model.sample_rate)
    assert set(stems) == set(model.sources)
    # a bag written in place: not a catalog model of its own
    entries["inplace"] = {"name": "inplace", "task": "music", "cascade": {
        "first": {"models": ["voc", "one"], "weights": [[1, 1], [0.5, 0]]}, "then": "one"}}
    model = catalog.load_model("inplace")
    assert isinstance(model.first, Bag) and len(model.first.members) == 2
    torch.testing.assert_close(model.first.weights[:, 0], torch.tensor([2 / 3, 1 / 3]))
    assert model.first.members[1] is model.then, "a model used twice is loaded once"
    rows = {r["name"]: r for r in catalog.list_models(include_tiny=False)}
    assert rows["inplace"]["members"] == ["(voc+one)", "one"] and "inplace.first" not in rows
    assert rows["inplace"]["params"] == rows["voc"]["params"] + rows["one"]["params"]
    # a cascade may hold a bag, not another cascade; a bag holds neither
    entries["loop"] = {"name": "loop", "task": "music", "cascade": {"first": "voc", "then": "casc"}}
    with pytest.raises(catalog.ModelError, match="loop: cascade member"):
        catalog.load_model("loop")
    entries["bags"] = {"name": "bags", "task": "music", "bag": {"models": ["one", "both"]}}
    with pytest.raises(catalog.ModelError, match="bags: bag member"):
        catalog.load_model("bags")
    entries["inline"] = {"name": "inline", "task": "music",
                         "bag": {"models": ["one", {"models": ["one", "two"]}]}}
    with pytest.raises(catalog.ModelError, match=r"inline: bag member\(s\) \(one\+two\)"):
        catalog.load_model("inline")
