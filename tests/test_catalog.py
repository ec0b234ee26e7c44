"""The GPU catalog: lookups, device-name matching, dtype spellings, user overrides."""

from __future__ import annotations

import pytest

from scalebench.errors import ConfigError
from scalebench.hardware import catalog as cat
from scalebench.hardware.catalog import GPUSpec, get_gpu, list_gpus, load_catalog, match_device_name

REQUIRED = ["A100-40GB", "A100-80GB", "A100-PCIe-40GB", "A100-PCIe-80GB", "H100-SXM", "H100-PCIe", "H100-NVL",
            "H200", "B200", "GH200", "L4", "L40S", "A10G", "V100-32GB", "V100-16GB", "T4", "RTX-4090", "MI300X",
            "H800", "H20", "GB200", "MI325X", "TPU-v3", "TPU-v4", "TPU-v5e", "TPU-v5p", "Trainium2"]  # issue 12
NO_POWER = {"TPU-v3", "TPU-v4", "TPU-v5e", "TPU-v5p", "Trainium2"}  # vendors publish no chip power


def test_required_entries_present_and_sane():
    names = list_gpus()
    assert set(REQUIRED) <= set(names)
    for name in names:
        spec = get_gpu(name)
        assert spec.memory_bytes > 2**30 and spec.bandwidth_bytes_per_s > 1e11
        assert (spec.tdp_w is None) == (name in NO_POWER) and (spec.tdp_w is None or spec.tdp_w > 0)
        assert spec.source and spec.price_source  # a price, or the reason there is none
        assert set(spec.peak_flops) == set(cat.DTYPES)
        fp32, tensor16 = spec.peak_for("fp32"), spec.peak_for("bf16") or spec.peak_for("fp16")
        assert tensor16 and (fp32 is None or tensor16 >= fp32)  # 16-bit tensor units never slower than fp32
        # interconnect and sparsity, each with its source (issue 12)
        assert spec.generation and spec.node_size >= 1 and spec.interconnect_source and spec.sparsity_source
        assert spec.intra_node_bandwidth_bytes_per_s and spec.intra_node_bandwidth_bytes_per_s > 1e9
        assert spec.inter_node_bandwidth_bytes_per_s is None or spec.inter_node_bandwidth_bytes_per_s > 1e9


def test_new_entries_known_figures():
    # datasheet facts (dense): H800 = H100 compute with NVLink cut to 400 GB/s (200 GB/s per direction)
    assert get_gpu("H800").peak_for("bf16") == get_gpu("H100-SXM").peak_for("bf16")
    assert get_gpu("H800").intra_node_bandwidth_bytes_per_s == pytest.approx(200e9)
    assert get_gpu("GB200").node_size == 72 and get_gpu("GB200").peak_for("bf16") == pytest.approx(2.5e15)
    assert get_gpu("MI325X").memory_bytes == 256 * 2**30 and get_gpu("TPU-v5p").peak_for("bf16") == 459e12
    assert get_gpu("TPU-v4").peak_for("fp32") is None and get_gpu("TPU-v4").peak_for("fp16") is None
    assert get_gpu("A100-80GB").sparsity_2_4 and not get_gpu("V100-32GB").sparsity_2_4
    assert not get_gpu("TPU-v5e").sparsity_2_4


def test_dense_not_sparse_peaks():
    # datasheet "1979 TFLOPS*" bf16 is with sparsity; the catalog holds the dense 989.5
    h100 = get_gpu("H100-SXM")
    assert h100.peak_for("bf16") == pytest.approx(989.5e12)
    assert h100.peak_for("fp8") == pytest.approx(2 * h100.peak_for("bf16"))
    assert get_gpu("A100-80GB").peak_for("bf16") == pytest.approx(312e12)
    # the H200 measured 798 TFLOP/s bf16 matmul ceiling (DESIGN.md) sits below the dense datasheet peak
    assert 0.75 < 798e12 / get_gpu("H200").peak_for("bf16") < 0.85


def test_memory_is_gib():
    assert get_gpu("A100-80GB").memory_bytes == 80 * 2**30
    assert get_gpu("A100-40GB").memory_bytes == 40 * 2**30


@pytest.mark.parametrize("dtype", ["bf16", "bfloat16", "torch.bfloat16", "BF16"])
def test_peak_for_spellings(dtype):
    assert get_gpu("H100-SXM").peak_for(dtype) == pytest.approx(989.5e12)


def test_peak_for_missing_units_and_twin():
    v100 = get_gpu("V100-32GB")
    assert v100.peak_for("bf16") is None and v100.peak_for("tf32") is None  # no such units: never guessed
    assert v100.peak_for("fp16") == pytest.approx(125e12)
    spec = GPUSpec(name="X", vendor="NVIDIA", peak_flops={"bf16": 1e14}, memory_bytes=2**34,
                   bandwidth_bytes_per_s=1e12, tdp_w=100, price_usd_per_hour=None, price_source="", source="s")
    assert spec.peak_for("fp16") == 1e14  # absent key: fp16 and bf16 stand in for each other
    with pytest.raises(ConfigError, match="dtype"):
        spec.peak_for("int3")


@pytest.mark.parametrize("reported,name", [
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA H200", "H200"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("AMD Instinct MI300X", "MI300X"), ("Tesla T4", "T4"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA L4", "L4"), ("Tesla V100-SXM2-16GB", "V100-16GB"),
])
def test_match_device_name(reported, name):
    assert match_device_name(reported).name == name


@pytest.mark.parametrize("reported", ["NVIDIA GeForce RTX 3090", "NVIDIA H100", "cpu", "", "NVIDIA A100"])
def test_match_device_name_never_guesses(reported):
    assert match_device_name(reported) is None


def test_get_gpu_case_insensitive_and_unknown_lists_names():
    assert get_gpu("h100-sxm").name == "H100-SXM"
    assert get_gpu("NVIDIA H100 80GB HBM3").name == "H100-SXM"
    with pytest.raises(ConfigError, match="known GPUs: .*H100-SXM"):
        get_gpu("H900")


def test_override_file_changes_and_adds(tmp_path, monkeypatch):
    f = tmp_path / "gpus.toml"
    f.write_text('[h100-sxm]\nprice_usd_per_hour = 2.1\nprice_source = "contract 2025"\n'
                 '[h100-sxm.peak_flops]\nfp8 = "none"\n'
                 '[MyCard]\nvendor = "NVIDIA"\npeak_flops = { bf16 = 100e12 }\nmemory_bytes = 25769803776\n'
                 'bandwidth_bytes_per_s = 1e12\ntdp_w = 300\nsource = "sheet"\naliases = ["NVIDIA MyCard 24GB"]\n')
    catalog = load_catalog(f)
    assert catalog["H100-SXM"].price_usd_per_hour == 2.1
    assert catalog["H100-SXM"].peak_for("fp8") is None
    assert catalog["H100-SXM"].peak_for("bf16") == pytest.approx(989.5e12)  # untouched fields kept
    assert catalog["MyCard"].peak_for("fp32") is None
    assert get_gpu("H100-SXM").price_usd_per_hour == 2.99  # the built-in table is not changed
    monkeypatch.setenv(cat.ENV_VAR, str(f))
    assert get_gpu("mycard").memory_bytes == 24 * 2**30
    assert match_device_name("NVIDIA MyCard 24GB").name == "MyCard"
    assert "MyCard" in list_gpus()


@pytest.mark.parametrize("body,key", [
    ("[H100-SXM]\nprice_per_hour = 2\n", "price_per_hour"),
    ("[H100-SXM]\npeak_flops = { bf17 = 1e12 }\n", "peak_flops.bf17"),
    ("[New]\nvendor = 'X'\n", "needs key"),
    ("[H100-SXM]\ntdp_w = -5\n", "tdp_w"),
])
def test_override_bad_keys_name_file_and_key(tmp_path, body, key):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_catalog(f)
    assert str(f) in str(info.value) and key in str(info.value)


def test_env_var_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv(cat.ENV_VAR, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="SCALEBENCH_GPU_CATALOG"):
        get_gpu("H100-SXM")
