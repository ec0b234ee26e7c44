"""Image data for the CNN family: an embedded procedural set, ImageFolder trees, and CIFAR-10's binary files.

``data.source`` chooses (with ``[data.images]`` for the settings):

* ``"default"`` — the **procedural glyph set**, generated here, deterministic from ``data.images.seed``.
  Each of K classes is a glyph: 3–4 line strokes drawn once from the seed. A sample renders its class's
  glyph under a random similarity transform (rotation ±20°, scale 0.75–1.05, shift ±0.2 of the
  half-width), with every stroke end jittered (σ = 0.05), a random stroke thickness, a random foreground
  colour on a random two-colour gradient background, a distractor stroke of another colour and pixel
  noise (σ = 0.05) (the constants below). Shape is the only class signal; colour, position, size, pose and clutter are nuisance. The
  set is hard in the way that makes scaling measurable: classes are separable in principle (strokes are
  thick enough to see at 16×16) but the nuisance variation is wide, so larger networks and more samples
  keep lowering the held-out loss over the ranges a CPU can train (evidence in docs/families.md). Training and
  held-out samples come from separate random streams (split 0 and 1), in chunks of 1024 drawn from
  (seed, split, chunk): a larger ``train_samples`` keeps the first samples unchanged.
* a folder with ``data_batch_*.bin`` (directly or in ``cifar-10-batches-bin/``) — **CIFAR-10's binary
  layout** (Krizhevsky 2009): records of 1 label byte and 3072 pixel bytes (1024 red, 1024 green, 1024
  blue, row-major 32×32). ``data_batch_1..5`` train, ``test_batch`` is held out. Read with numpy; nothing
  is unpickled.
* any other folder — an **ImageFolder** tree ``ROOT/<class>/<image>`` read with Pillow (classes are the
  sorted sub-folder names). With ``ROOT/train`` and ``ROOT/val`` (or ``ROOT/test``) those are the split;
  otherwise a file is held out when the hash of its relative path falls below ``eval.held_out_share``
  (the corpus rule: adding files never moves others across the split). Images are converted to RGB
  (or L for ``channels = 1``) and resized to ``image_size`` (bilinear).

Every source is materialised once as uint8 arrays under ``$SCALEBENCH_HOME/images/<key>/``; runs memory-map
them. Batches are standardised per channel with the training split's mean and standard deviation.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalebench._util import scalebench_home
from scalebench.errors import ConfigError

GENERATOR_VERSION = 1  # bump when the procedural set changes (the cache key and fingerprint move with it)
CHUNK = 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
CIFAR_RECORD = 1 + 3 * 32 * 32
# the procedural set's nuisance (module docstring); coordinates are in units of the image half-width
MAX_ROTATION = 0.35  # radians (±20°)
SCALE = (0.75, 1.05)
MAX_SHIFT = 0.2
JITTER = 0.05  # σ of each stroke end
DISTRACTORS = 1
PIXEL_NOISE = 0.05


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """A prepared image set, as the sweep records it (meta ``corpus``)."""

    task: str = "images"
    source: str
    kind: str  # "procedural", "cifar10" or "imagefolder"
    path: str  # the cache folder with train_x.npy, train_y.npy, val_x.npy, val_y.npy
    image_size: int
    channels: int
    num_classes: int
    train_units: int
    val_units: int
    mean: tuple[float, ...]  # per channel, of the training split, in [0, 1]
    std: tuple[float, ...]
    fingerprint: str
    class_names: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def description(self) -> str:
        return (f"{self.kind} images {self.source}: {self.train_units:,} train / {self.val_units:,} held-out, "
                f"{self.channels}×{self.image_size}×{self.image_size}, {self.num_classes} classes")


# --- the procedural glyph set ---------------------------------------------------------------------

def _glyphs(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class templates: (K, 4, 2, 2) stroke end points in [-0.75, 0.75]² and a (K, 4) mask of used strokes."""
    rng = np.random.default_rng((seed, 99))
    ends = rng.uniform(-0.75, 0.75, (k, 4, 2, 2))
    used = np.arange(4)[None, :] < rng.integers(3, 5, k)[:, None]
    return ends, used


def _segment_alpha(grid: np.ndarray, ends: np.ndarray, used: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Coverage (n, P) of n samples' strokes (n, S, 2, 2) on grid points (P, 2): max over strokes."""
    a, b = ends[:, :, None, 0, :], ends[:, :, None, 1, :]  # (n, S, 1, 2)
    ab = b - a
    t = ((grid[None, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-6)
    t = np.clip(t, 0.0, 1.0)[..., None]
    d2 = ((grid[None, None] - a - t * ab) ** 2).sum(-1)  # (n, S, P)
    alpha = np.exp(-d2 / (2 * sigma[:, None, None] ** 2)) * used[:, :, None]
    return alpha.max(axis=1)


def _render_chunk(seed: int, split: int, chunk: int, n: int, k: int, size: int, channels: int):
    rng = np.random.default_rng((seed, split, chunk))
    ends, used = _glyphs(seed, k)
    y = rng.integers(0, k, n)
    strokes = ends[y] + rng.normal(0, JITTER, (n, 4, 2, 2))
    theta = rng.uniform(-MAX_ROTATION, MAX_ROTATION, n)
    scale = rng.uniform(*SCALE, n)
    rot = np.stack([np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)], -1).reshape(n, 1, 1, 2, 2)
    strokes = (rot @ strokes[..., None])[..., 0] * scale[:, None, None, None]
    strokes += rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 1, 1, 2))
    dis_a = rng.uniform(-1, 1, (n, DISTRACTORS, 2))
    dis_dir = rng.normal(0, 1, (n, DISTRACTORS, 2))
    dis_len = rng.uniform(0.2, 0.5, (n, DISTRACTORS, 1))
    dis_b = dis_a + dis_dir / np.linalg.norm(dis_dir, axis=-1, keepdims=True) * dis_len
    distractors = np.stack([dis_a, dis_b], axis=2)  # (n, DISTRACTORS, 2, 2)
    sigma = rng.uniform(0.07, 0.13, n)

    lin = (np.arange(size) + 0.5) / size * 2 - 1
    gy, gx = np.meshgrid(lin, lin, indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], -1)  # (P, 2)
    alpha = _segment_alpha(grid, strokes, used[y], sigma)[:, None, :]  # (n, 1, P)
    alpha_d = _segment_alpha(grid, distractors, np.ones((n, DISTRACTORS), bool), sigma * 0.7)[:, None, :]

    c0, c1 = rng.uniform(0, 1, (n, 3, 1)), rng.uniform(0, 1, (n, 3, 1))
    direction = rng.normal(0, 1, (n, 2))
    ramp = 0.5 + 0.5 * np.clip(grid @ (direction / np.linalg.norm(direction, axis=1, keepdims=True)).T, -1, 1).T
    bg = c0 + (c1 - c0) * ramp[:, None, :]  # (n, 3, P)
    fg = np.clip(1 - (c0 + c1) / 2 + rng.normal(0, 0.15, (n, 3, 1)), 0, 1)  # contrasting, not fixed
    dcol = rng.uniform(0, 1, (n, 3, 1))
    img = bg * (1 - alpha) + fg * alpha
    img = img * (1 - alpha_d) + dcol * alpha_d
    img += rng.normal(0, PIXEL_NOISE, img.shape)
    if channels == 1:
        img = img.mean(axis=1, keepdims=True)
    pixels = np.clip(np.round(img * 255), 0, 255).astype(np.uint8).reshape(n, channels, size, size)
    return pixels, y.astype(np.uint8 if k <= 256 else np.int64)


def procedural_split(*, seed: int, split: int, n: int, num_classes: int, size: int, channels: int):
    """(images uint8 (n, C, H, W), labels) of one split of the procedural set."""
    xs, ys = [], []
    for c in range(0, (n + CHUNK - 1) // CHUNK):
        x, y = _render_chunk(seed, split, c, CHUNK, num_classes, size, channels)  # whole chunks: prefix-stable
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


# --- CIFAR-10 and ImageFolder ---------------------------------------------------------------------

def _cifar_dir(root: Path) -> Path | None:
    for d in (root, root / "cifar-10-batches-bin"):
        if d.is_dir() and any(d.glob("data_batch_*.bin")):
            return d
    return None


def _read_cifar(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    chunks = []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size % CIFAR_RECORD:
            raise ConfigError(f"data.source: {f} is not CIFAR-10's binary layout ({raw.size} bytes is not a "
                              f"multiple of {CIFAR_RECORD}-byte records)")
        chunks.append(raw.reshape(-1, CIFAR_RECORD))
    rec = np.concatenate(chunks)
    labels = rec[:, 0]
    if labels.max() > 9:
        raise ConfigError(f"data.source: label byte {int(labels.max())} in {files[0].parent} is not a "
                          "CIFAR-10 class (0-9); is this CIFAR-100 (2 label bytes)?")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _resize(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (n, C, H, W) to (n, channels, size, size) through Pillow (bilinear), when it changes."""
    if images.shape[2] == size and images.shape[1] == channels:
        return images
    from PIL import Image

    out = np.empty((len(images), channels, size, size), np.uint8)
    for i, im in enumerate(images):
        pil = Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0)), "RGB")
        if channels == 1:
            pil = pil.convert("L")
        arr = np.asarray(pil.resize((size, size), Image.BILINEAR))
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out


def _held_out(rel: str, share: float) -> bool:
    h = int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big")
    return h / 2**64 < share


def _image_files(root: Path) -> tuple[list[str], list[tuple[str, int, Path]]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = []
    for ci, c in enumerate(classes):
        for p in sorted((root / c).rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                files.append((p.relative_to(root).as_posix(), ci, p))
    return classes, files


def _load_images(files: list[tuple[str, int, Path]], size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    x = np.empty((len(files), channels, size, size), np.uint8)
    y = np.empty(len(files), np.int64)
    for i, (rel, ci, p) in enumerate(files):
        try:
            with Image.open(p) as im:
                im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
                arr = np.asarray(im)
        except OSError as exc:
            raise ConfigError(f"data.source: {rel} is not a readable image ({exc}); remove it") from None
        x[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        y[i] = ci
    return x, y


def _image_folder(root: Path, size: int, channels: int, share: float):
    split_dirs = [root / "train", next((root / n for n in ("val", "test") if (root / n).is_dir()), None)]
    if split_dirs[0].is_dir() and split_dirs[1] is not None:
        classes, train = _image_files(split_dirs[0])
        val_classes, val = _image_files(split_dirs[1])
        if val_classes != classes:
            raise ConfigError(f"data.source: {split_dirs[1]} has classes {val_classes[:5]}..., "
                              f"{split_dirs[0]} has {classes[:5]}...; both splits need the same class folders")
    else:
        classes, files = _image_files(root)
        train = [f for f in files if not _held_out(f[0], share)]
        val = [f for f in files if _held_out(f[0], share)]
    if len(classes) < 2:
        raise ConfigError(f"data.source: {root} needs at least 2 class folders (ROOT/<class>/<image>), "
                          f"found {classes}")
    if not train or not val:
        raise ConfigError(f"data.source: {root} gives an empty {'held-out' if train else 'training'} split; "
                          "add images or raise eval.held_out_share")
    return classes, _load_images(train, size, channels), _load_images(val, size, channels), train + val


# --- materialising, the task and its batches -----------------------------------------------------------

def _source_key(spec: Any, held_out_share: float) -> tuple[str, str, Path | None]:
    """(kind, cache key, root) for ``data``: cheap (names, sizes, mtimes), the content is fingerprinted once."""
    im = spec.images
    h = hashlib.sha256(json.dumps([GENERATOR_VERSION, spec.source, asdict(im), held_out_share]).encode())
    if spec.source == "default":
        return "procedural", h.hexdigest()[:20], None
    root = Path(spec.source).expanduser()
    if not root.is_dir():
        raise ConfigError(f"data.source: {spec.source!r} is not a folder; the image task reads 'default' (the "
                          "procedural set), a folder of CIFAR-10 data_batch_*.bin files, or an ImageFolder tree")
    cifar = _cifar_dir(root)
    files = sorted(cifar.glob("*.bin")) if cifar else sorted(p for p in root.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return ("cifar10" if cifar else "imagefolder"), h.hexdigest()[:20], root


def _build(kind: str, root: Path | None, spec: Any, held_out_share: float):
    im = spec.images
    if kind == "procedural":
        size = im.image_size or 16
        args = dict(seed=im.seed, num_classes=im.num_classes, size=size, channels=im.channels)
        train = procedural_split(split=0, n=im.train_samples, **args)
        val = procedural_split(split=1, n=im.val_samples, **args)
        return [f"glyph{k}" for k in range(im.num_classes)], train, val
    size = im.image_size or 32
    if kind == "cifar10":
        d = _cifar_dir(root)
        test = d / "test_batch.bin"
        if not test.is_file():
            raise ConfigError(f"data.source: {d} has data_batch_*.bin but no test_batch.bin (the held-out split)")
        x, y = _read_cifar(sorted(d.glob("data_batch_*.bin")))
        xv, yv = _read_cifar([test])
        names_file = d / "batches.meta.txt"
        names = [n for n in names_file.read_text().split() if n] if names_file.is_file() else []
        return (names if len(names) == 10 else [str(i) for i in range(10)],
                (_resize(x, size, im.channels), y), (_resize(xv, size, im.channels), yv))
    classes, train, val, _ = _image_folder(root, size, im.channels, held_out_share)
    return classes, train, val


def _save(out: Path, name: str, array: np.ndarray) -> None:
    tmp = out / f"{name}.{os.getpid()}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, out / f"{name}.npy")


def prepare_images(spec: Any, held_out_share: float) -> ImageInfo:
    """Materialise (once) and describe the image set ``spec`` (a DataSpec) names."""
    kind, key, root = _source_key(spec, held_out_share)
    out = scalebench_home() / "images" / key
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "meta.json"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sweeps preparing the same set: one builds, one waits
        if meta.is_file():
            d = json.loads(meta.read_text())
            return ImageInfo(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"]),
                                "class_names": tuple(d["class_names"])})
        classes, (x, y), (xv, yv) = _build(kind, root, spec, held_out_share)
        fp = hashlib.sha256()
        for name, a in (("train_x", x), ("train_y", y.astype(np.int64)), ("val_x", xv), ("val_y", yv.astype(np.int64))):
            _save(out, name, a)
            fp.update(np.ascontiguousarray(a).tobytes())
        flat = x.reshape(len(x), x.shape[1], -1).astype(np.float64) / 255
        info = ImageInfo(source=spec.source, kind=kind, path=str(out), image_size=int(x.shape[2]),
                         channels=int(x.shape[1]), num_classes=len(classes), train_units=len(x), val_units=len(xv),
                         mean=tuple(float(v) for v in flat.mean(axis=(0, 2))),
                         std=tuple(float(v) for v in flat.std(axis=(0, 2))),
                         fingerprint=fp.hexdigest()[:16], class_names=tuple(classes))
        tmp = meta.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info.as_dict(), indent=1))
        os.replace(tmp, meta)  # meta last: a half-built cache is never mistaken for a finished one
        return info


class ImageBatches:
    """Standardised float32 batches (rows, C, H, W) and int64 labels; training without replacement."""

    def __init__(self, info: ImageInfo, batch_rows: int) -> None:
        from scalebench.data.samples import EpochSampler

        p = Path(info.path)
        self.x, self.y = np.load(p / "train_x.npy", mmap_mode="r"), np.load(p / "train_y.npy")
        self.xv, self.yv = np.load(p / "val_x.npy", mmap_mode="r"), np.load(p / "val_y.npy")
        self.batch_rows = batch_rows
        shape = (1, info.channels, 1, 1)
        self.scale = (1 / (255 * np.asarray(info.std, np.float32))).reshape(shape)
        self.shift = (np.asarray(info.mean, np.float32) / np.asarray(info.std, np.float32)).reshape(shape)
        self._sampler_cls, self._samplers = EpochSampler, {}

    def _norm(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) * self.scale - self.shift

    def batch(self, seed: int, step: int, micro_index: int, rows: int):
        sampler = self._samplers.get(seed)
        if sampler is None:
            sampler = self._samplers[seed] = self._sampler_cls(len(self.y), seed)
        idx = sampler.indices(step * self.batch_rows + micro_index * rows, rows)
        order = np.argsort(idx)  # memory-map reads in file order, then back to the drawn order
        x = np.empty((rows,) + self.x.shape[1:], np.uint8)
        x[order] = self.x[idx[order]]
        return self._norm(x), self.y[idx]

    def eval_batches(self, eval_units: int, rows: int):
        n = min(int(eval_units), len(self.yv))
        for i in range(0, n, rows):
            j = min(n, i + rows)
            yield self._norm(np.asarray(self.xv[i:j])), self.yv[i:j]


class ImagesTask:
    """The ``images`` data task (registered in the task registry)."""

    name = "images"
    full_batch = True  # gd can take the whole training set as its batch

    def prepare(self, data: Any, held_out_share: float) -> ImageInfo:
        return prepare_images(data, held_out_share)

    def info_from_dict(self, d: dict[str, Any]) -> ImageInfo:
        return ImageInfo(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"]),
                            "class_names": tuple(d.get("class_names", ()))})

    def open(self, info: ImageInfo, run: Any) -> ImageBatches:
        return ImageBatches(info, run.batch_rows)


def _register() -> None:
    from scalebench.data.tasks import register_task

    register_task(ImagesTask())


_register()
