"""Dataset registry: bundled faces, CelebA (folder or zip), any image folder, MNIST .npz.

Every loader yields uint8 images of the configured size and channel count, in a fixed
(sorted) order, so the image set is a pure function of the source and the settings.
Decoded sets are cached on disk keyed by source, crop, size, channels and count; a
cache entry is reused only after re-checking the source files it was built from.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import importlib.resources
import io
import json
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.core import streams
from bench.core.config import DataConfig
from bench.core.errors import BenchError
from bench.core.names import cache_dir
from bench.core.schema import suggest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CACHE_VERSION = 1  # bump when decoding changes, so old cache entries are not reused
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class Dataset:
    """Images in [-1, 1], float32, shape (N, H, W, C), plus where they came from."""

    images: np.ndarray  # or points (N, D) for point data
    source: str  # human-readable: what was read
    checksum: str  # sha256 of the uint8 image set: same checksum, same training data
    skipped: int  # files that could not be decoded
    skipped_examples: tuple[str, ...]
    cache: str  # "hit", "written" or "off"
    scaling: dict | None = None  # point data: {"mean": [...], "std": [...]} when standardised

    @property
    def is_points(self) -> bool:
        return self.images.ndim == 2

    def describe(self) -> dict:
        return {"source": self.source, "images": len(self.images), "shape": list(self.images.shape[1:]),
                "kind": "points" if self.is_points else "images", "sha256": self.checksum,
                "skipped_files": self.skipped, "skipped_examples": list(self.skipped_examples), "cache": self.cache,
                **({"standardized": self.scaling} if self.scaling else {})}


# ------------------------------------------------------------- image handling


def _to_model_image(img: Image.Image, cfg: DataConfig, name: str) -> np.ndarray:
    """Centre-crop, resize and convert one image to uint8 (H, W, C)."""
    img = img.convert("RGB" if cfg.channels == 3 else "L")
    if cfg.crop:
        w, h = img.size
        if cfg.crop > min(w, h):
            raise BenchError(f"data.crop {cfg.crop} is larger than image {name} ({w}x{h})")
        left, top = (w - cfg.crop) // 2, (h - cfg.crop) // 2
        img = img.crop((left, top, left + cfg.crop, top + cfg.crop))
    th, tw = cfg.image_size
    if img.size != (tw, th):
        w, h = img.size
        if th > h or tw > w:
            raise BenchError(
                f"data.image_size {th}x{tw} is larger than the source images ({h}x{w} after crop, e.g. {name}); "
                "use a size the data can give"
            )
        img = img.resize((tw, th), _RESAMPLE[cfg.resample])
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _decode(read: Callable[[], bytes], cfg: DataConfig, name: str) -> np.ndarray | None:
    """Decode one file; None if it is corrupt or not an image (counted by the caller)."""
    try:
        with Image.open(io.BytesIO(read())) as img:
            img.load()  # forces a full decode, so truncated files fail here
            return _to_model_image(img, cfg, name)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


@dataclass
class _FileSource:
    """A sorted list of image files in a folder or a zip, with a fingerprint for the cache."""

    label: str
    names: list[str]
    reader: Callable[[str], Callable[[], bytes]]
    fingerprint: Callable[[list[str]], list]


def _folder_source(root: Path, recursive: bool) -> _FileSource:
    if recursive:
        names = sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    else:
        names = sorted(e.name for e in os.scandir(root) if Path(e.name).suffix.lower() in IMAGE_SUFFIXES)

    def fingerprint(used: list[str]) -> list:
        out = []
        for n in used:
            st = (root / n).stat()
            out.append([n, st.st_size, st.st_mtime_ns])
        return out

    return _FileSource(str(root), names, lambda n: (root / n).read_bytes, fingerprint)


def _zip_source(path: Path, prefer_dir: str | None) -> _FileSource:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BenchError(f"{path}: not a readable zip file ({e})") from None
    names = sorted(i.filename for i in zf.infolist() if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES)
    if prefer_dir:
        inside = [n for n in names if n.startswith(prefer_dir + "/")]
        names = inside or names
    st = path.stat()

    def reader(n: str) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                return zf.read(n)
            except (zipfile.BadZipFile, zlib.error) as e:  # a damaged member is a corrupt file
                raise OSError(str(e)) from None
        return read

    return _FileSource(f"{path}", names, reader, lambda used: [str(path.resolve()), st.st_size, st.st_mtime_ns, len(used)])


def _decode_first(src: _FileSource, cfg: DataConfig) -> tuple[np.ndarray, list[str], list[str]]:
    """Decode the first ``cfg.limit`` decodable files (all if 0), in sorted order."""
    want = cfg.limit or len(src.names)
    images: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[str] = []
    pos = 0
    # Pillow releases the GIL while decoding JPEGs: threads use every core.
    with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        while len(images) < want and pos < len(src.names):
            chunk = src.names[pos: pos + (want - len(images))]
            pos += len(chunk)
            for name, arr in zip(chunk, pool.map(lambda n: _decode(src.reader(n), cfg, n), chunk), strict=True):
                used.append(name)
                if arr is None:
                    skipped.append(name)
                else:
                    images.append(arr)
    if not images:
        raise BenchError(f"{src.label}: no decodable image among {len(src.names)} files ({len(skipped)} corrupt)")
    if cfg.limit and len(images) < cfg.limit:
        raise BenchError(
            f"{src.label}: data.limit is {cfg.limit} but only {len(images)} decodable images were found "
            f"({len(skipped)} corrupt); lower --limit"
        )
    return np.stack(images), used, skipped


# -------------------------------------------------------------------- loaders
# Each loader returns (uint8 images, description, cache fingerprint or None, used names, skipped names).


def _require_path(cfg: DataConfig, what: str) -> Path:
    if not cfg.path:
        raise BenchError(f"dataset '{cfg.source}' needs --data pointing at {what}")
    p = Path(cfg.path).expanduser()
    if not p.exists():
        raise BenchError(f"data path not found: {p}")
    return p


def _files_loader(cfg: DataConfig, what: str, prefer_dir: str | None, recursive: bool):
    p = _require_path(cfg, what)
    if p.is_file():
        if not zipfile.is_zipfile(p):
            raise BenchError(f"{p}: expected a folder of images or a .zip of them")
        src = _zip_source(p, prefer_dir)
    else:
        if prefer_dir and (p / prefer_dir).is_dir():
            p = p / prefer_dir
        src = _folder_source(p, recursive)
    if not src.names:
        raise BenchError(f"{src.label}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return src


def load_celeba(cfg: DataConfig):
    return _files_loader(cfg, "img_align_celeba/ or img_align_celeba.zip", "img_align_celeba", recursive=False)


def load_folder(cfg: DataConfig):
    return _files_loader(cfg, "a folder (or .zip) of images", None, recursive=True)


def _lfw_subset() -> np.ndarray:
    """scikit-image's lfw_subset.npy as uint8: 100 LFW face crops, then 100 crops that are not faces."""
    ref = importlib.resources.files("skimage.data") / "lfw_subset.npy"
    try:
        with importlib.resources.as_file(ref) as f:
            raw = np.load(f)
    except OSError as e:
        raise BenchError(f"bundled faces not found in scikit-image ({e}); reinstall scikit-image") from None
    return np.round(raw * 255).astype(np.uint8)


def other_images(cfg: DataConfig) -> np.ndarray:
    """Images of another data set, at the experiment's size and channels, in [-1, 1]: the 100 LFW crops that
    are not faces, which scikit-image ships beside the faces (the validation suite mixes them into real
    images, as the FID paper mixed ImageNet into CelebA)."""
    plain = DataConfig(image_size=cfg.image_size, channels=cfg.channels, resample=cfg.resample)
    imgs = [_to_model_image(Image.fromarray(f, "L").resize((max(cfg.image_size[1], 25), max(cfg.image_size[0], 25)),
                                                            _RESAMPLE[cfg.resample]), plain, f"lfw_subset[{100 + i}]")
            for i, f in enumerate(_lfw_subset()[100:])]
    return (np.stack(imgs).astype(np.float32) - 127.5) / 127.5


def load_faces(cfg: DataConfig):
    """The 100 LFW faces (25x25 grey) that scikit-image ships in its wheel: no download."""
    faces = _lfw_subset()[:100]  # the first 100 are faces, the rest are not
    if cfg.limit:
        faces = faces[: cfg.limit]
    imgs = [_to_model_image(Image.fromarray(f, "L"), cfg, f"lfw_subset[{i}]") for i, f in enumerate(faces)]
    return np.stack(imgs), "scikit-image lfw_subset: 100 Labeled Faces in the Wild crops, 25x25 grey"


def load_mnist(cfg: DataConfig):
    """An MNIST ``.npz`` in the Keras layout (``x_train`` uint8 (N, 28, 28)); training split only."""
    p = _require_path(cfg, "mnist.npz (Keras layout: x_train, y_train, x_test, y_test)")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "x_train" not in z.files:
                raise BenchError(f"{p}: no 'x_train' array (found: {', '.join(z.files) or 'none'}); expected the Keras MNIST layout")
            x = z["x_train"]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise BenchError(f"{p}: not a readable .npz file ({e})") from None
    if x.ndim != 3 or x.shape[0] == 0:
        raise BenchError(f"{p}: x_train has shape {x.shape}, expected (N, H, W) with N > 0")
    if cfg.limit:
        if cfg.limit > len(x):
            raise BenchError(f"{p}: data.limit is {cfg.limit} but x_train holds {len(x)} images; lower --limit")
        x = x[: cfg.limit]
    x = np.clip(x, 0, 255).astype(np.uint8)
    imgs = [_to_model_image(Image.fromarray(a, "L"), cfg, f"x_train[{i}]") for i, a in enumerate(x)]
    return np.stack(imgs), f"MNIST x_train from {p}"


def load_digits(cfg: DataConfig):
    """The 1797 8x8 handwritten digits bundled with scikit-learn (values 0-16): no download."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise BenchError("dataset 'digits' needs scikit-learn (pip install scikit-learn)") from None
    x = sk_digits().images
    if cfg.limit:
        if cfg.limit > len(x):
            raise BenchError(f"data.limit is {cfg.limit} but the digits set holds {len(x)} images; lower --limit")
        x = x[: cfg.limit]
    x = np.round(x * 255 / 16).astype(np.uint8)
    imgs = [_to_model_image(Image.fromarray(a, "L"), cfg, f"digits[{i}]") for i, a in enumerate(x)]
    return np.stack(imgs), "scikit-learn digits: 8x8 handwritten digits"


def load_quadratic(cfg: DataConfig):
    """Points (x, 10 + x^2), x uniform on [-50, 50]: the classic 2-D GAN toy, generated from data.seed."""
    n = cfg.limit or 10_000
    x = streams.rng(cfg.seed, streams.QUADRATIC).uniform(-50, 50, n)
    return np.stack([x, 10 + x ** 2], axis=1).astype(np.float32), f"{n} points (x, 10 + x^2), x ~ U[-50, 50], seed {cfg.seed}"


# Name -> (loader, one-line description). A loader returns either a _FileSource (decoded and
# cached here) or (uint8 images, description) for sources that are already arrays.
DATASETS: dict[str, tuple[Callable, str]] = {
    "faces": (load_faces, "100 LFW faces bundled with scikit-image (25x25 grey, offline; default)"),
    "celeba": (load_celeba, "CelebA aligned JPEGs: img_align_celeba/ folder or img_align_celeba.zip (--data)"),
    "folder": (load_folder, "any folder or .zip of images, read recursively in sorted order (--data)"),
    "mnist": (load_mnist, "MNIST .npz in the Keras layout, x_train (--data)"),
    "digits": (load_digits, "1797 8x8 handwritten digits bundled with scikit-learn (offline)"),
    "quadratic": (load_quadratic, "2-D points (x, 10 + x^2), x ~ U[-50, 50], generated (offline)"),
}


# ---------------------------------------------------------------------- cache


def _cache_key(cfg: DataConfig, label: str) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "source": cfg.source, "where": label, "crop": cfg.crop,
                       "size": list(cfg.image_size), "channels": cfg.channels, "limit": cfg.limit,
                       "resample": cfg.resample}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_read(path: Path, src: _FileSource) -> tuple[np.ndarray, list[str]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            used = meta["used"]
            # Valid only if the same files still come first and are unchanged.
            if src.names[: len(used)] != used or src.fingerprint(used) != meta["fingerprint"]:
                return None
            return z["images"], meta["skipped"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None  # a damaged cache entry is rebuilt, never trusted


def _cache_write(path: Path, images: np.ndarray, src: _FileSource, used: list[str], skipped: list[str]) -> bool:
    meta = json.dumps({"used": used, "skipped": skipped, "fingerprint": src.fingerprint(used)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, meta=np.array(meta))
        os.replace(tmp, path)
        return True
    except OSError:
        return False  # an unwritable cache only costs time


def load(cfg: DataConfig, use_cache: bool = True) -> Dataset:
    """Load a dataset by registry name; images scaled (x - 127.5) / 127.5 to [-1, 1]."""
    if cfg.source not in DATASETS:
        raise BenchError(f"unknown dataset '{cfg.source}'{suggest(cfg.source, DATASETS)}; known: {', '.join(DATASETS)}")
    if cfg.resample not in _RESAMPLE:
        raise BenchError(f"data.resample '{cfg.resample}' unknown{suggest(cfg.resample, _RESAMPLE)}; known: {', '.join(_RESAMPLE)}")
    loaded = DATASETS[cfg.source][0](cfg)
    skipped: list[str] = []
    cache_state = "off"
    if isinstance(loaded, _FileSource):
        src = loaded
        path = cache_dir() / f"{cfg.source}-{_cache_key(cfg, src.label)}.npz"
        hit = _cache_read(path, src) if use_cache else None
        if hit is not None:
            images, skipped = hit
            cache_state = "hit"
        else:
            images, used, skipped = _decode_first(src, cfg)
            cache_state = "written" if use_cache and _cache_write(path, images, src, used, skipped) else "off"
        source = f"{cfg.source}: {len(images)} images from {src.label}" + (f" ({len(skipped)} corrupt files skipped)" if skipped else "")
    else:
        images, source = loaded
    digest = hashlib.sha256(str(images.shape).encode() + images.tobytes()).hexdigest()
    if images.dtype != np.uint8:  # point data: as generated, optionally standardised
        scaling = None
        if cfg.standardize:
            mean, std = images.mean(axis=0), images.std(axis=0)
            images = ((images - mean) / np.where(std > 0, std, 1)).astype(np.float32)
            scaling = {"mean": mean.tolist(), "std": std.tolist()}
        return Dataset(images.astype(np.float32), source, digest, 0, (), cache_state, scaling)
    scaled = (images.astype(np.float32) - 127.5) / 127.5
    return Dataset(scaled, source, digest, len(skipped), tuple(skipped[:5]), cache_state)
