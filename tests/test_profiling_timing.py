"""StepTimer (fake clock where timing.py imports it, then a real loop) and memory helpers."""

from __future__ import annotations

import pytest
import torch

from scalebench.profiling import memory, timing
from scalebench.profiling.timing import StepTimer


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timing, "perf_counter", c)
    return c


def test_known_step_times_data_wait_and_warmup_exclusion(clock):
    timer = StepTimer("cpu", warmup_steps=2)
    # warm-up steps are slow (compilation) and must not count
    for _ in range(2):
        clock.advance(5.0)
        timer.step(tokens=100, samples=2)
    durations = [0.1, 0.2, 0.3, 0.4, 1.0]
    for d in durations:
        with timer.data_wait():
            clock.advance(0.05 * d)
        clock.advance(0.95 * d)
        timer.step(tokens=100, samples=2)
    s = timer.finish()
    assert s.n_steps == 5
    assert s.step_times_s == pytest.approx(durations)
    assert s.step_time_s == pytest.approx(0.3)
    assert s.step_time_p90_s == pytest.approx(0.76)  # numpy's linear interpolation: 0.4 + 0.6 * 0.6
    assert s.tokens_per_s == pytest.approx(100 / 0.3)  # per-step tokens over the median step (DESIGN.md)
    assert s.samples_per_s == pytest.approx(2 / 0.3)
    assert s.step_time_mean_s == pytest.approx(2.0 / 5)
    assert s.data_wait_share == pytest.approx(0.05)
    assert timer.finish() is s  # idempotent
    with pytest.raises(RuntimeError):
        timer.step()


def test_excluded_region_is_left_out(clock):
    timer = StepTimer("cpu", warmup_steps=0)
    clock.advance(1.0)
    timer.step(tokens=10)
    with timer.excluded():
        clock.advance(50.0)  # evaluation
    clock.advance(1.0)
    timer.step(tokens=10)
    s = timer.finish()
    assert s.step_times_s == pytest.approx([1.0, 1.0])
    assert s.wall_s == pytest.approx(2.0)
    assert s.tokens_per_s == pytest.approx(10.0)


def test_no_measured_steps_gives_none(clock):
    timer = StepTimer("cpu", warmup_steps=3)
    timer.step()
    s = timer.finish()
    assert s.n_steps == 0 and s.step_time_s is None and s.tokens_per_s is None and s.data_wait_share is None


def test_real_cpu_loop():
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    timer = StepTimer("cpu", warmup_steps=1)
    for _ in range(6):
        with timer.data_wait():
            x = torch.randn(16, 64)
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad()
        timer.step(tokens=16, samples=16)
    s = timer.finish()
    assert s.n_steps == 5
    assert all(t > 0 for t in s.step_times_s)
    assert s.step_time_s <= s.step_time_p90_s
    assert 0 <= s.data_wait_share < 1
    assert s.as_dict()["n_steps"] == 5 and "step_times_s" not in s.as_dict()


def test_memory_on_cpu_reports_rss_only():
    tracker = memory.MemoryTracker("cpu")
    tracker.start()
    m = tracker.read()
    assert m.peak_rss_bytes is not None and m.peak_rss_bytes > 10 * 2**20
    assert m.peak_mem_bytes is None and m.alloc_retries is None and m.peak_reserved_fraction is None


def test_memory_cuda_counters_are_deltas(monkeypatch):
    counters = {"num_alloc_retries": 3, "num_ooms": 1}
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda index=None: dict(counters))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda index=None: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda index=None: 6 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda index=None: 9 * 2**30)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda index: type("P", (), {"total_memory": 10 * 2**30})()
    )
    tracker = memory.MemoryTracker("cuda")
    tracker.start()
    counters.update(num_alloc_retries=5, num_ooms=1)
    m = tracker.read()
    assert (m.alloc_retries, m.oom_count) == (2, 0)
    assert m.peak_reserved_fraction == pytest.approx(0.9)
    assert m.as_dict()["peak_mem_bytes"] == 6 * 2**30
