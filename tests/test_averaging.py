"""Weight averaging over a stage's last epochs (train.average_last)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.training.averaging import WeightAverage, averaging_start  # noqa: E402


def test_averaging_start_window() -> None:
    assert averaging_start(60, 0.0) is None
    assert averaging_start(60, 0.5) == 31  # epochs 31..60: the last 30
    assert averaging_start(6, 0.5) == 4
    assert averaging_start(4, 1.0) == 1
    assert averaging_start(5, 0.01) == 5  # at least the last epoch


def test_running_mean_applied_then_restored_and_frozen_parts_unchanged() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    net[1].weight.requires_grad_(False)
    frozen = net[1].weight.detach().clone()
    avg, seen = WeightAverage(start=2), []
    for epoch in range(1, 5):
        with torch.no_grad():
            net[0].weight.fill_(float(epoch))
        seen.append(epoch)
        added = avg.update(net, epoch)
        assert added == (epoch >= 2)
    assert avg.count == 3
    with avg.applied(net):
        assert torch.allclose(net[0].weight, torch.full((2, 3), 3.0))  # mean of epochs 2, 3, 4
        assert torch.equal(net[1].weight, frozen)
    assert torch.allclose(net[0].weight, torch.full((2, 3), 4.0))  # own weights back
    again = WeightAverage.from_dict(avg.to_dict())
    with again.applied(net):
        assert torch.allclose(net[0].weight, torch.full((2, 3), 3.0))


def test_nothing_to_apply_before_the_window() -> None:
    net = torch.nn.Linear(2, 2)
    before = net.weight.detach().clone()
    avg = WeightAverage(start=5)
    assert not avg.update(net, 1)
    with avg.applied(net):
        assert torch.equal(net.weight, before)
