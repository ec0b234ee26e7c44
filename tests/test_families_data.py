"""The image and teacher-student tasks: determinism, splits, CIFAR-10/ImageFolder reading, the exact floor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scalebench.config import DataSpec, ImagesDataSpec, TeacherDataSpec
from scalebench.data.images import CIFAR_RECORD, ImagesTask, prepare_images, procedural_split
from scalebench.data.samples import EpochSampler
from scalebench.data.teacher import Teacher, TeacherTask, entropy, generate, sample_labels
from scalebench.errors import ConfigError


class _Run:
    batch_rows = 8


def test_procedural_images_are_deterministic_and_prefix_stable():
    args = dict(seed=3, num_classes=5, size=12, channels=3)
    a_x, a_y = procedural_split(split=0, n=1100, **args)
    b_x, b_y = procedural_split(split=0, n=1100, **args)
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, b_y)
    c_x, _ = procedural_split(split=0, n=1500, **args)  # more samples: the first ones do not move
    np.testing.assert_array_equal(c_x[:1100], a_x)
    other, _ = procedural_split(split=0, n=64, **{**args, "seed": 4})
    assert not np.array_equal(other, a_x[:64])
    assert a_x.shape == (1100, 3, 12, 12) and a_x.dtype == np.uint8
    assert set(np.unique(a_y)) == set(range(5))


def test_procedural_split_is_disjoint_and_prepared_once(scalebench_home):
    spec = DataSpec(images=ImagesDataSpec(train_samples=300, val_samples=100, image_size=8, num_classes=4))
    info = prepare_images(spec, 0.05)
    assert (info.train_units, info.val_units, info.image_size, info.num_classes) == (300, 100, 8, 4)
    again = prepare_images(spec, 0.05)
    assert again == info  # read back from the cache
    batches = ImagesTask().open(ImagesTask().info_from_dict(info.as_dict()), _Run())
    train = {bytes(r) for r in np.asarray(batches.x).reshape(300, -1)}
    val = {bytes(r) for r in np.asarray(batches.xv).reshape(100, -1)}
    assert not train & val  # separate random streams: no held-out image is a training image
    x, y = batches.batch(0, 0, 0, 8)
    assert x.dtype == np.float32 and x.shape == (8, 3, 8, 8) and y.dtype == np.int64
    assert abs(float(np.asarray(batches._norm(np.asarray(batches.x))).mean())) < 1e-3  # standardised
    ev = list(batches.eval_batches(50, 16))
    assert sum(len(b[1]) for b in ev) == 50


def test_epoch_sampler_sees_every_sample_once_per_epoch_and_splits_steps_alike():
    s = EpochSampler(10, seed=1)
    first, second = s.indices(0, 10), s.indices(10, 10)
    assert sorted(first) == sorted(second) == list(range(10)) and list(first) != list(second)
    whole = EpochSampler(10, 1).indices(4, 8)  # one step of 8 ...
    halves = np.concatenate([EpochSampler(10, 1).indices(4, 4), EpochSampler(10, 1).indices(8, 4)])
    np.testing.assert_array_equal(whole, halves)  # ... or two micro-batches of 4: the same samples


def _cifar_file(path, labels, rng):
    rec = np.zeros((len(labels), CIFAR_RECORD), np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = rng.integers(0, 256, (len(labels), CIFAR_RECORD - 1))
    rec.tofile(path)
    return rec


def test_cifar10_binary_layout_is_read_plane_by_plane(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    recs = [_cifar_file(d / f"data_batch_{i}.bin", rng.integers(0, 10, 6), rng) for i in (1, 2)]
    _cifar_file(d / "test_batch.bin", np.arange(4), rng)
    info = prepare_images(DataSpec(source=str(tmp_path)), 0.05)
    assert (info.kind, info.train_units, info.val_units, info.image_size, info.num_classes) == ("cifar10", 12, 4, 32, 10)
    b = ImagesTask().open(info, _Run())
    first = recs[0][0]
    np.testing.assert_array_equal(np.asarray(b.x[0, 0]), first[1:1025].reshape(32, 32))  # red plane
    np.testing.assert_array_equal(np.asarray(b.x[0, 2]), first[2049:].reshape(32, 32))  # blue plane
    assert list(b.y[:6]) == list(recs[0][:, 0])
    small = prepare_images(DataSpec(source=str(tmp_path), images=ImagesDataSpec(image_size=16)), 0.05)
    assert small.image_size == 16
    (d / "data_batch_3.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ConfigError, match="not a multiple of 3073"):
        prepare_images(DataSpec(source=str(tmp_path)), 0.05)


def test_image_folder_reads_classes_and_splits_by_folder_or_hash(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog", "eel"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    info = prepare_images(DataSpec(source=str(tmp_path), images=ImagesDataSpec(image_size=8)), 0.05)
    assert (info.kind, info.train_units, info.val_units, info.class_names) == ("imagefolder", 9, 9, ("cat", "dog", "eel"))
    flat = tmp_path / "flat"
    for c in ("a", "b"):
        (flat / c).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(flat / c / f"{i}.png")
    gray = prepare_images(DataSpec(source=str(flat), images=ImagesDataSpec(image_size=6, channels=1)), 0.3)
    assert gray.channels == 1 and gray.train_units + gray.val_units == 40 and 0 < gray.val_units < 40
    with pytest.raises(ConfigError, match="not a folder"):
        prepare_images(DataSpec(source=str(tmp_path / "missing")), 0.05)


TEACHER = dict(input_dim=6, num_classes=5, hidden=16, layers=2, temperature=0.5, label_noise=0.0, seed=7)


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_teacher_floor_closed_form_matches_monte_carlo(noise):
    args = {**TEACHER, "label_noise": noise}
    d = generate(**args, train_samples=10, val_samples=4000)
    teacher = Teacher(**args)
    logp = teacher.log_probs(d.x_val)
    rng = np.random.default_rng(11)
    draws = np.stack([sample_labels(logp, rng) for _ in range(50)])  # 200k labels
    monte_carlo = -np.take_along_axis(logp, draws.T, axis=1).mean()
    assert d.irreducible_loss == pytest.approx(monte_carlo, abs=0.01)
    if noise:  # uniform mixing raises every entropy: a known floor above the clean teacher's
        clean = generate(**TEACHER, train_samples=10, val_samples=4000)
        assert d.irreducible_loss > clean.irreducible_loss
    # the held-out targets are the teacher's distribution: predicting it exactly scores the floor
    p = d.p_val.astype(np.float64)
    assert -(p * logp).sum(1).mean() == pytest.approx(d.irreducible_loss, abs=1e-6)
    assert 0 < d.irreducible_loss < np.log(5)


def test_teacher_entropy_by_hand():
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(entropy(logp), [np.log(2), 0.0])


def test_teacher_task_records_the_floor_and_regenerates_identically():
    spec = DataSpec(teacher=TeacherDataSpec(**{k: v for k, v in TEACHER.items()}, train_samples=500, val_samples=300))
    task = TeacherTask()
    info = task.prepare(spec, 0.05)
    assert info.irreducible_loss == pytest.approx(generate(**TEACHER, train_samples=500, val_samples=300).irreducible_loss)
    b = task.open(task.info_from_dict(info.as_dict()), _Run())
    x, y = b.batch(0, 3, 1, 4)
    assert x.shape == (4, 6) and y.dtype == np.int64
    ev = list(b.eval_batches(10_000, 128))
    assert sum(len(t) for _, t in ev) == 300 and ev[0][1].shape == (128, 5)  # soft targets, the whole set
    np.testing.assert_allclose(ev[0][1].sum(1), 1.0, rtol=1e-5)
    tampered = dataclasses.replace(info, fingerprint="0" * 16)
    with pytest.raises(ConfigError, match="fingerprint"):
        task.open(tampered, _Run())


def test_student_that_is_the_teacher_reaches_the_floor_in_torch():
    """family.loss with the held-out soft targets scores the teacher's own logits at exactly the floor."""
    import torch

    from scalebench.families import get_family

    d = generate(**TEACHER, train_samples=10, val_samples=500)
    logits = torch.from_numpy(Teacher(**TEACHER).log_probs(d.x_val)).float()
    loss = float(get_family("mlp").loss(logits, torch.from_numpy(d.p_val)))
    assert loss == pytest.approx(d.irreducible_loss, abs=1e-5)
