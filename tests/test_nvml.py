"""NVML wrapper and telemetry sampler against a fake ``pynvml`` patched where the wrapper imports it."""

from __future__ import annotations

import time
import types
import warnings

import pytest

from scalebench.errors import DeviceError
from scalebench.hardware import nvml
from scalebench.profiling.telemetry import SAMPLE_KEYS, TelemetrySampler

NOT_SUPPORTED, GPU_IS_LOST, LIB_NOT_FOUND = 3, 15, 12


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 15: "GPU is lost", 12: "NVML Shared Library Not Found"}.get(
            self.value, "err"
        )


def fake_pynvml(**overrides):
    """A module-like fake: 2 GPUs, 200 W, 1 J of energy per counter read, throttled (SW power cap)."""
    state = {"energy_mj": 0, "inits": 0, "shutdowns": 0, "handles": []}

    def energy(handle):
        state["energy_mj"] += 1000
        return state["energy_mj"]

    def handle_by_index(i):
        state["handles"].append(i)
        return f"h{i}"

    m = types.SimpleNamespace(
        NVMLError=FakeNVMLError,
        NVML_ERROR_NOT_SUPPORTED=NOT_SUPPORTED,
        NVML_ERROR_FUNCTION_NOT_FOUND=13,
        NVML_CLOCK_SM=1,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: state.__setitem__("inits", state["inits"] + 1),
        nvmlShutdown=lambda: state.__setitem__("shutdowns", state["shutdowns"] + 1),
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=handle_by_index,
        nvmlDeviceGetHandleByUUID=lambda uuid: f"uuid:{uuid}",
        nvmlDeviceGetName=lambda h: b"NVIDIA H200",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=87, memory=40),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=10 * 2**30, total=141 * 2**30, free=0),
        nvmlDeviceGetPowerUsage=lambda h: 200_000,
        nvmlDeviceGetClockInfo=lambda h, kind: 1980,
        nvmlDeviceGetTemperature=lambda h, sensor: 55,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x4,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x4,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        state=state,
    )
    for k, v in overrides.items():
        setattr(m, k, v)
    return m


def raiser(code):
    def fn(*args):
        raise FakeNVMLError(code)

    return fn


@pytest.fixture
def fake(monkeypatch):
    m = fake_pynvml()
    monkeypatch.setattr(nvml, "pynvml", m)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return m


# -- wrapper -------------------------------------------------------------------------------------------------
def test_unavailable_without_the_package(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", None)
    ok, reason = nvml.nvml_available()
    assert not ok and "not installed" in reason
    with pytest.raises(DeviceError):
        nvml.init()


def test_unavailable_without_a_driver(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", fake_pynvml(nvmlInit=raiser(LIB_NOT_FOUND)))
    ok, reason = nvml.nvml_available()
    assert not ok
    assert "nvmlInit" in reason and "Library Not Found" in reason


def test_available_with_a_device(fake):
    assert nvml.nvml_available() == (True, "")
    assert fake.state["inits"] == fake.state["shutdowns"] == 1


def test_no_gpu_is_unavailable(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", fake_pynvml(nvmlDeviceGetCount=lambda: 0))
    assert nvml.nvml_available() == (False, "NVML found no GPU")


def test_reading_converts_units(fake):
    r = nvml.read("h0")
    assert r.gpu_util == 87.0
    assert r.mem_used_bytes == 10 * 2**30
    assert r.power_w == pytest.approx(200.0)  # NVML reports milliwatts
    assert (r.sm_clock_mhz, r.temp_c, r.throttle_reasons) == (1980, 55, 0x4)
    assert nvml.device_name("h0") == "NVIDIA H200"


def test_not_supported_reading_is_none_not_an_error(monkeypatch):
    monkeypatch.setattr(
        nvml,
        "pynvml",
        fake_pynvml(
            nvmlDeviceGetPowerUsage=raiser(NOT_SUPPORTED),
            nvmlDeviceGetTotalEnergyConsumption=raiser(NOT_SUPPORTED),
        ),
    )
    r = nvml.read("h0")
    assert r.power_w is None and r.gpu_util == 87.0
    assert nvml.energy_mj("h0") is None


def test_other_errors_map_to_device_error_naming_the_call(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", fake_pynvml(nvmlDeviceGetTemperature=raiser(GPU_IS_LOST)))
    with pytest.raises(DeviceError, match=r"nvmlDeviceGetTemperature.*GPU is lost") as info:
        nvml.read("h0")
    assert isinstance(info.value.__cause__, FakeNVMLError)


def test_old_driver_falls_back_to_throttle_reasons(monkeypatch):
    monkeypatch.setattr(
        nvml,
        "pynvml",
        fake_pynvml(
            nvmlDeviceGetCurrentClocksEventReasons=raiser(13),
            nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x40,
        ),
    )
    assert nvml.read("h0").throttle_reasons == 0x40


def test_cuda_visible_devices_maps_cuda_index_to_nvml_index(fake, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    nvml.handle_for_cuda_device(1)
    assert fake.state["handles"] == [1]
    nvml.handle_for_cuda_device(0)
    assert fake.state["handles"] == [1, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert nvml.handle_for_cuda_device(0) == "uuid:GPU-abc"
    with pytest.raises(DeviceError, match="not visible"):
        nvml.handle_for_cuda_device(1)


# -- sampler -------------------------------------------------------------------------------------------------
def test_sampler_records_samples_and_counter_energy(fake):
    with TelemetrySampler(0, interval_s=0.005) as s:
        time.sleep(0.03)
    summary = s.summary()
    assert summary.available and summary.reason == ""
    assert summary.n_samples == len(s.samples) >= 2  # opening and closing readings at least
    assert set(s.samples[0]) == set(SAMPLE_KEYS)
    assert summary.energy_source == "counter"
    assert summary.energy_j == pytest.approx(1.0)  # two counter reads, 1000 mJ apart
    assert summary.avg_power_w == pytest.approx(1.0 / summary.duration_s)
    assert summary.gpu_util_mean == pytest.approx(87.0)
    assert summary.mem_used_max_bytes == 10 * 2**30
    assert summary.throttled_share == 1.0  # SW power cap is a throttle reason
    assert summary.as_dict()["energy_j"] == summary.energy_j
    assert fake.state["inits"] == fake.state["shutdowns"]


def test_sampler_integrates_power_without_the_energy_counter(monkeypatch):
    monkeypatch.setattr(
        nvml,
        "pynvml",
        fake_pynvml(
            nvmlDeviceGetTotalEnergyConsumption=raiser(NOT_SUPPORTED),
            nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x1,
        ),
    )
    with TelemetrySampler(0, interval_s=0.005) as s:
        time.sleep(0.02)
    summary = s.summary()
    assert summary.energy_source == "integrated"
    assert summary.avg_power_w == pytest.approx(200.0)
    assert summary.energy_j == pytest.approx(200.0 * summary.duration_s)
    assert summary.throttled_share == 0.0  # idle is not throttling


def test_no_device_or_no_nvml_is_unavailable_and_harmless(monkeypatch):
    s = TelemetrySampler(None)
    with s:
        pass
    assert s.summary().available is False and "no GPU" in s.summary().reason
    monkeypatch.setattr(nvml, "pynvml", None)
    with TelemetrySampler(0) as s2:
        pass
    summary = s2.summary()
    assert not summary.available and "not installed" in summary.reason
    assert summary.energy_j is None and s2.samples == []


def test_error_during_sampling_warns_and_keeps_partial_samples(monkeypatch):
    calls = {"n": 0}

    def flaky_power(h):
        calls["n"] += 1
        if calls["n"] > 2:
            raise FakeNVMLError(GPU_IS_LOST)
        return 100_000

    monkeypatch.setattr(nvml, "pynvml", fake_pynvml(nvmlDeviceGetPowerUsage=flaky_power))
    s = TelemetrySampler(0, interval_s=0.002)
    s.start()
    time.sleep(0.03)
    with pytest.warns(RuntimeWarning, match="GPU is lost"):
        s.stop()
    summary = s.summary()
    assert summary.available and summary.n_samples == 2
    assert "nvmlDeviceGetPowerUsage" in summary.reason


def test_strict_sampler_raises_device_error(monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", fake_pynvml(nvmlDeviceGetUtilizationRates=raiser(GPU_IS_LOST)))
    s = TelemetrySampler(0, interval_s=0.002, strict=True)
    s.start()
    with warnings.catch_warnings(), pytest.raises(DeviceError, match="nvmlDeviceGetUtilizationRates"):
        warnings.simplefilter("error")
        s.stop()


def test_slot_telemetry_watches_every_gpu_of_a_multi_rank_run(fake):
    from scalebench.profiling.telemetry import SlotTelemetry

    with SlotTelemetry([0, 1], interval_s=0.005) as slot:
        time.sleep(0.03)
    rows = slot.samples
    assert {(r["gpu"], r["rank"]) for r in rows} == {(0, 0), (1, 1)}
    s = slot.summary()
    # the fake's counter advances 1 J per read, shared by both boards: start 0, start 1, stop 0, stop 1
    assert s.available and s.energy_source == "counter" and s.energy_j == pytest.approx(4.0)
    assert s.gpu_util_mean == 87 and s.n_samples == len(rows)
    parts = [x.summary() for x in slot.samplers]
    assert s.avg_power_w == pytest.approx(sum(p.avg_power_w for p in parts))  # power adds up over the GPUs
