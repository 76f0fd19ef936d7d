"""Sample grids and raw arrays: what the report shows and the quality metrics can re-read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.store.files import atomic_write, atomic_write_bytes, outside, warn, writing


def to_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W, C) images in [-1, 1] into one uint8 grid image."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    pixels = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y: y + h, x: x + w] = pixels[i]
    return grid[..., 0] if c == 1 else grid


def save_arrays(folder: Path, stem: str, **arrays: np.ndarray) -> None:
    """Several arrays in one ``.npz``, written whole or not at all."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{stem}.npz", lambda f: np.savez(f, **arrays), durable=False)


def save_images(folder: Path, stem: str, images: np.ndarray, scale: int = 1) -> bytes | None:
    """Raw float32 array and a PNG grid (upscaled ``scale`` times, nearest) of the same images; returns
    the PNG's bytes (None for points).

    Point data (N, D) gets the array only: the report draws it (training never imports matplotlib).
    """
    from PIL import Image

    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{stem}.npy", lambda f: np.save(f, images.astype(np.float32)), durable=False)
    if images.ndim != 4:
        return None
    img = Image.fromarray(to_grid(images))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    png = buffer.getvalue()
    atomic_write_bytes(folder / f"{stem}.png", png, durable=False)
    return png


def read_array(path: Path, root: Path, key: str | None = None, ndim: int | None = 2) -> np.ndarray | None:
    """A saved array of a run folder (a ``.npy``, or array ``key`` of a ``.npz``) as float64, for reading
    back: None, with a warning naming it, when it leads out of ``root`` (a symlink), is unreadable or does
    not have ``ndim`` dimensions (a run folder may come from anywhere)."""
    if outside(root, path):
        return None
    try:
        with open(path, "rb") as f:  # checked above to stay inside the folder; np.load never unpickles here
            loaded = np.load(f, allow_pickle=False)
            arr = np.asarray(loaded[key] if key is not None else loaded, dtype=float)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        warn(f"{path}: unreadable array ({type(e).__name__}); left out")
        return None
    if ndim is not None and arr.ndim != ndim:
        warn(f"{path}: an array of {arr.ndim} dimensions, expected {ndim}; left out")
        return None
    return arr
