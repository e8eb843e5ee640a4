"""Image input throughput: the same face-sized JPEGs read from a folder per identity and from an insightface
RecordIO set (.rec + .idx), decoded and converted into float32 batches by tfxc's input pipeline.

  python tools/bench_image_sources.py --images 20000 --identities 500 --repeats 3 --out runs/bench/sources

The images are scikit-learn's digit scans upscaled to 112x112 and stored as JPEG (quality 90), the size of
insightface's aligned faces; the same bytes go into both layouts. Two figures a layout, best of --repeats
passes over the whole set (the page cache is warm after the first pass, for both layouts alike; with --cold it
is dropped before every pass, as a set larger than memory or on a network disk reads, which needs root):
  read      images/s the source yields (file or record reads only);
  pipeline  images/s out of `tfxc.extract`'s tf.data pipeline (read, decode, convert at 112x112, batch),
            what a backbone is fed.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import time

from tfxc.cli import positive_int
from tfxc.utils.display import json_text


def make_sets(out: str, count: int, identities: int, size: int) -> tuple[str, str]:
    """The folder root and the .rec path of `count` JPEGs of `identities` identities (kept when made)."""
    import numpy as np
    from sklearn.datasets import load_digits

    from tfxc._tf import tf
    from tfxc.images.recordio import write_recordio

    folder, rec = os.path.join(out, "folder"), os.path.join(out, "faces.rec")
    marker = os.path.join(out, f".made-{count}-{identities}-{size}")
    if os.path.exists(marker):
        return folder, rec
    digits = load_digits()
    rng = np.random.default_rng(0)
    items = []
    for i in range(count):
        scan = digits.images[i % len(digits.images)] * (255 / 16)
        pixels = tf.image.resize(scan[..., None].repeat(3, -1), [size, size], "bilinear")
        pixels = pixels + rng.normal(0, 4, (size, size, 3))  # sensor noise: JPEGs of a realistic size
        data = tf.io.encode_jpeg(tf.cast(tf.clip_by_value(pixels, 0, 255), tf.uint8), quality=90).numpy()
        identity = i % identities
        items.append((identity, data))
        path = os.path.join(folder, f"id{identity:06d}", f"{i:08d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    items.sort(key=lambda item: item[0])
    write_recordio(rec, items)
    open(marker, "w").close()
    return folder, rec


def drop_page_cache() -> None:
    """Empties the kernel's page cache, so that the next pass reads from the disk (Linux, root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as error:
        raise SystemExit(f"--cold needs root: cannot write /proc/sys/vm/drop_caches ({error.strerror})") from None


def read_rate(source) -> tuple[float, int, int]:
    """(images/s, images, bytes) of one pass of the source's reads."""
    start, count, size = time.perf_counter(), 0, 0
    for item in source.items(with_bytes=True):
        count, size = count + 1, size + len(item.data)
    return count / (time.perf_counter() - start), count, size


def pipeline_rate(source, converter, batch_size: int) -> float:
    """images/s of one pass of `tfxc.extract`'s input pipeline over the source."""
    from tfxc.extract import _Recent, image_batches
    from tfxc.images import DEFAULT_MAX_PIXELS
    from tfxc.utils.pipeline_errors import PipelineErrors

    errors = PipelineErrors()
    start, count = time.perf_counter(), 0
    with errors.unwrapped():
        for batch in image_batches(source, converter, batch_size, 0, _Recent(batch_size), errors, DEFAULT_MAX_PIXELS):
            count += int(batch.shape[0])
    return count / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=20000)
    parser.add_argument("--identities", type=positive_int, default=500)
    parser.add_argument("--size", type=positive_int, default=112)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before every pass (root)")
    parser.add_argument("--out", default="runs/bench/sources")
    args = parser.parse_args(argv)
    from tfxc.images.iresnet import IResNetImageConverter
    from tfxc.images.recordio import RecordIOSource
    from tfxc.images.sources import FolderSource

    folder, rec = make_sets(os.path.abspath(args.out), args.images, args.identities, args.size)
    converter = IResNetImageConverter(image_size=(args.size, args.size), scale=1 / 127.5, offset=-1.0)
    result = {"images": args.images, "identities": args.identities, "size": args.size,
              "batch_size": args.batch_size, "repeats": args.repeats, "cold": args.cold, "cpus": os.cpu_count()}
    for name, source in (("folder", FolderSource(folder)), ("recordio", RecordIOSource(rec))):
        def cold_first(measure, *extra):
            if args.cold:
                drop_page_cache()
            return measure(source, *extra)

        reads = [cold_first(read_rate) for _ in range(args.repeats)]
        pipeline = [cold_first(pipeline_rate, converter, args.batch_size) for _ in range(args.repeats)]
        result[name] = {"read_images_per_s": round(max(r[0] for r in reads)), "read_images": reads[0][1],
                        "mean_jpeg_bytes": round(reads[0][2] / reads[0][1]),
                        "pipeline_images_per_s": round(max(pipeline))}
    print(json_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
