"""Data registry: CelebA folder/zip, image folders, corrupt files, the decode cache."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_celeba_jpegs, zip_folder
from PIL import Image

from bench import data
from bench.core.config import DataConfig
from bench.core.errors import BenchError

CELEBA = DataConfig(source="celeba", image_size=(28, 28), channels=3, crop=108, limit=10)


def _reference(path) -> np.ndarray:
    """The reference preprocessing written out by hand: centre crop 108, resize 28, [-1, 1]."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    left, top = (w - 108) // 2, (h - 108) // 2
    img = img.crop((left, top, left + 108, top + 108)).resize((28, 28), Image.Resampling.BILINEAR)
    return (np.asarray(img, np.float32) - 127.5) / 127.5


def test_celeba_folder_crops_resizes_scales_in_sorted_order(celeba_dir):
    ds = data.load(DataConfig(**{**CELEBA.__dict__, "path": str(celeba_dir)}))
    assert ds.images.shape == (10, 28, 28, 3) and ds.images.dtype == np.float32
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    files = sorted((celeba_dir / "img_align_celeba").glob("*.jpg"))
    np.testing.assert_array_equal(ds.images[0], _reference(files[0]))
    np.testing.assert_array_equal(ds.images[9], _reference(files[9]))
    assert ds.skipped == 0 and "10 images" in ds.source


def test_celeba_zip_matches_folder(celeba_dir, tmp_path):
    z = zip_folder(celeba_dir / "img_align_celeba", tmp_path / "img_align_celeba.zip", "img_align_celeba")
    folder = data.load(DataConfig(**{**CELEBA.__dict__, "path": str(celeba_dir / "img_align_celeba")}))
    zipped = data.load(DataConfig(**{**CELEBA.__dict__, "path": str(z)}))
    assert zipped.checksum == folder.checksum
    np.testing.assert_array_equal(zipped.images, folder.images)


def test_corrupt_jpeg_is_skipped_and_counted(celeba_dir):
    bad = celeba_dir / "img_align_celeba" / "000003.jpg"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated
    (celeba_dir / "img_align_celeba" / "000005.jpg").write_bytes(b"not a jpeg at all")
    ds = data.load(DataConfig(**{**CELEBA.__dict__, "path": str(celeba_dir)}), use_cache=False)
    assert ds.skipped == 2
    assert set(ds.skipped_examples) == {"000003.jpg", "000005.jpg"}
    assert ds.images.shape[0] == 10  # the limit is still met from the following files
    assert "2 corrupt files skipped" in ds.source
    files = sorted((celeba_dir / "img_align_celeba").glob("*.jpg"))
    np.testing.assert_array_equal(ds.images[2], _reference(files[3]))


def test_cache_hit_gives_same_images_and_is_invalidated_by_changes(celeba_dir):
    cfg = DataConfig(**{**CELEBA.__dict__, "path": str(celeba_dir)})
    first = data.load(cfg)
    second = data.load(cfg)
    assert (first.cache, second.cache) == ("written", "hit")
    assert first.checksum == second.checksum
    make_celeba_jpegs(celeba_dir / "tmp", 1, seed=9)
    (celeba_dir / "tmp" / "000001.jpg").replace(celeba_dir / "img_align_celeba" / "000002.jpg")
    third = data.load(cfg)
    assert third.cache == "written" and third.checksum != first.checksum


def test_image_folder_is_read_recursively(tmp_path):
    make_celeba_jpegs(tmp_path / "imgs" / "a", 3)
    make_celeba_jpegs(tmp_path / "imgs" / "b", 2, seed=1)
    ds = data.load(DataConfig(source="folder", path=str(tmp_path / "imgs"), image_size=(16, 16), channels=1))
    assert ds.images.shape == (5, 16, 16, 1)


def test_bundled_faces_offline():
    ds = data.load(DataConfig())
    assert ds.images.shape == (100, 25, 25, 1)
    assert ds.images.std() > 0.1  # real faces, not a constant


def test_mnist_npz_in_keras_layout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.zeros(30), x_test=x[:5], y_test=np.zeros(5))
    ds = data.load(DataConfig(source="mnist", path=str(tmp_path / "mnist.npz"), image_size=(28, 28), channels=1, limit=20))
    assert ds.images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(ds.images[0, ..., 0], (x[0].astype(np.float32) - 127.5) / 127.5)


@pytest.mark.parametrize("cfg, message", [
    (DataConfig(source="celeba"), "needs --data"),
    (DataConfig(source="celeba", path="/nonexistent/celeba"), "not found"),
    (DataConfig(source="nope"), "unknown dataset 'nope'"),
    (DataConfig(source="faces", image_size=(64, 64)), "larger than the source images"),
    (DataConfig(source="faces", crop=40), "larger than image"),
])
def test_bad_data_settings_are_clear_errors(cfg, message):
    with pytest.raises(BenchError, match=message):
        data.load(cfg)


def test_empty_and_undecodable_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no image files"):
        data.load(DataConfig(source="folder", path=str(tmp_path / "empty")))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(BenchError, match="no decodable image"):
        data.load(DataConfig(source="folder", path=str(tmp_path / "junk")))
