import h5py
import numpy as np
import pytest

from luigi_tasks.io import open_file, pyramid_levels, read_image, write_image
from luigi_tasks.io.chunks import write_shuffled_gzip
from luigi_tasks.io.pyramid import downscale


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "uint32", "int64", "float32", "float64"])
@pytest.mark.parametrize("shape,chunks", [((1, 1), (1, 1)), ((5, 7), (2, 3)), ((300, 257), (256, 256))])
def test_chunks_compressed_here_read_back_exactly_with_the_usual_filters(tmp_path, dtype, shape, chunks):
    rng = np.random.default_rng(3)
    data = (rng.normal(size=shape) * 1000).astype(dtype)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        write_shuffled_gzip(f, "ours", data, chunks)
        f.create_dataset("hdf5", data=data, chunks=chunks, compression="gzip", compression_opts=1, shuffle=True)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        ours, theirs = f["ours"], f["hdf5"]
        assert ours.dtype == theirs.dtype and ours.chunks == theirs.chunks
        assert ours.compression == "gzip" and ours.compression_opts == 1 and ours.shuffle
        assert ours.id.get_create_plist().get_nfilters() == theirs.id.get_create_plist().get_nfilters() == 2
        np.testing.assert_array_equal(ours[()], data)
        np.testing.assert_array_equal(ours[1:4, 2:5], data[1:4, 2:5])


def test_write_image_h5_levels_equal_the_pyramid(tmp_path):
    image = np.random.default_rng(0).integers(0, 4096, size=(930, 1024)).astype("uint16")
    with open_file(tmp_path / "image.h5", "a") as f:
        write_image(f, "nuclei", image)
    with open_file(tmp_path / "image.h5") as f:
        for level, expected in enumerate(pyramid_levels(image)):
            np.testing.assert_array_equal(read_image(f, "nuclei", level), expected)


def _block_mean(image, factor):
    """The general path of ``downscale`` (mean over a reshaped view), for any dtype."""
    rows, cols = image.shape
    pad = (-rows % factor, -cols % factor)
    padded = np.pad(image, ((0, pad[0]), (0, pad[1])), mode="edge") if any(pad) else image
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    mean = blocks.mean(axis=(1, 3), dtype="float32")
    return np.round(mean).astype(image.dtype)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (93, 102)])
def test_halving_small_integers_equals_the_block_mean(dtype, shape):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    for image in (rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype),
                  np.full(shape, info.max, dtype), np.full(shape, info.min, dtype)):
        result = downscale(image, 2)
        assert result.dtype == image.dtype
        np.testing.assert_array_equal(result, _block_mean(image, 2))


@pytest.mark.parametrize("shuffle", [True, False])
def test_one_dimensional_chunks_without_shuffle_keep_their_filters(tmp_path, shuffle):
    from luigi_tasks.io.chunks import write_deflated

    counts = np.bincount(np.random.default_rng(2).integers(0, 3000, 5000), minlength=20000).astype(np.int64)
    with h5py.File(tmp_path / "h.h5", "w") as f:
        write_deflated(f, "counts", counts, chunks=(8192,), shuffle=shuffle, level=4)
    with h5py.File(tmp_path / "h.h5", "r") as f:
        dataset = f["counts"]
        filters = (dataset.compression, dataset.compression_opts, dataset.shuffle, dataset.chunks)
        assert filters == ("gzip", 4, shuffle, (8192,))
        np.testing.assert_array_equal(dataset[()], counts)


def test_n5_containers_get_their_own_gzip(tmp_path):
    from luigi_tasks.io.chunks import write_deflated

    counts = np.arange(20000, dtype=np.int64)
    with open_file(tmp_path / "h.n5", "a") as f:
        write_deflated(f, "counts", counts, chunks=(8192,), shuffle=False, level=4)
    with open_file(tmp_path / "h.n5", "r") as f:
        np.testing.assert_array_equal(f["counts"][:], counts)


def test_chunks_written_while_another_thread_uses_hdf5(tmp_path):
    """Commits run on a background thread; the direct chunk writes must hold h5py's lock (else HDF5 breaks)."""
    import threading

    errors, stop = [], threading.Event()

    def other_files():
        while not stop.is_set():
            try:
                with h5py.File(tmp_path / "other.h5", "w") as f:
                    for k in range(20):
                        f.create_dataset(f"d{k}", data=np.arange(100))
                        f[f"l{k}"] = h5py.ExternalLink("x.h5", "y")
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(error))

    thread = threading.Thread(target=other_files)
    thread.start()
    rng = np.random.default_rng(0)
    try:
        for _ in range(25):
            image = rng.integers(0, 5000, size=(600, 600)).astype("uint16")
            with open_file(tmp_path / "image.h5", "w") as f:
                write_image(f, "x", image)
            with open_file(tmp_path / "image.h5", "r") as f:
                np.testing.assert_array_equal(read_image(f, "x"), image)
    finally:
        stop.set()
        thread.join()
    assert errors == []
