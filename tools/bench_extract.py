"""Extraction throughput, peak memory and resume after kill -9, for a ResNet-50-sized backbone at 224x224.

Pretrained weights cannot be downloaded here, so the backbone is ResNet-50's exact architecture with random
weights (tools/tiny_vision_preset.py --family resnet_50): the same convolutions, hence the same time and
memory as the real checkpoint. The images are scikit-learn's digit scans upscaled to `--size` pixels and
stored as JPEG, a folder per digit; the preset's converter centre-crops and resizes them to 224x224.

  python tools/bench_extract.py --images 1000 --precision bfloat16 float32 --kill --out runs/bench/extract

Prints one JSON line: per precision the images/s (over the whole run, and after the first batch, whose
time is mostly tracing) and peak resident memory `tfxc.extract` reported (its extract.json), and with --kill whether a run killed with SIGKILL half-way and resumed wrote byte-identical
files to an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

from tfxc.cli import positive_int
from tfxc.utils.display import json_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(root: str, count: int, size: int) -> str:
    """`count` digit scans as `size` x `size` JPEGs in root/digit<d>/ (kept when already there)."""
    from sklearn.datasets import load_digits

    marker = os.path.join(root, f".made-{count}-{size}")
    if os.path.exists(marker):
        return root
    import tensorflow as tf

    digits = load_digits()
    for i in range(count):
        image, label = digits.images[i % len(digits.images)], int(digits.target[i % len(digits.target)])
        pixels = tf.image.resize((image * (255 / 16))[..., None].repeat(3, -1), [size, size], "bilinear")
        folder = os.path.join(root, f"digit{label}")
        os.makedirs(folder, exist_ok=True)
        data = tf.io.encode_jpeg(tf.cast(tf.clip_by_value(pixels, 0, 255), tf.uint8), quality=90)
        tf.io.write_file(os.path.join(folder, f"{i:06d}.jpg"), data)
    open(marker, "w").close()
    return root


def extract_command(images: str, preset: str, out: str, precision: str, batch_size: int) -> list[str]:
    return [sys.executable, "-m", "tfxc.extract", "--folder", images, "--preset", preset, "--out", out,
            "--precision", precision, "--batch-size", str(batch_size), "--chunk-rows", str(4 * batch_size)]


def digest(out: str) -> str:
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        for name in ("features.npy", "labels.npy", "refs.txt"):
            with open(os.path.join(out, split, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def run(command: list[str]) -> dict:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def killed_and_resumed(command: list[str], out: str, total: int) -> dict:
    """Runs `command`, kills it with SIGKILL once half the images are on disk, runs it again to the end."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    progress = os.path.join(out, ".extract", "progress.json")
    while proc.poll() is None:
        if os.path.exists(progress):
            with open(progress) as f:
                if json.load(f)["done"] >= total // 2:
                    break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with open(progress) as f:
        killed_at = json.load(f)["done"]
    card = run(command)
    return {"killed_at": killed_at, "resumed_at": card["resumed_at"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=1000)
    parser.add_argument("--size", type=positive_int, default=256, help="the stored images' side, before the 224 crop")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--precision", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--kill", action="store_true", help="also kill -9 a run half-way, resume it and compare")
    parser.add_argument("--out", default="runs/bench/extract")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import tiny_vision_preset

    out = os.path.abspath(args.out)
    preset = os.path.join(out, "resnet_50_random")
    if not os.path.exists(os.path.join(preset, "config.json")):
        tiny_vision_preset.build_preset("resnet_50", preset, image_size=224)
    images = make_images(os.path.join(out, "images"), args.images, args.size)
    result = {"images": args.images, "stored_size": args.size, "batch_size": args.batch_size, "cpus": os.cpu_count()}
    for precision in args.precision:
        target = os.path.join(out, f"features-{precision}")
        command = extract_command(images, preset, target, precision, args.batch_size)
        subprocess.run(["rm", "-rf", target])
        card = run(command)
        result[precision] = {"images_per_s": card["images_per_s"], "steady_images_per_s": card["steady_images_per_s"],
                             "peak_rss_gb": card["peak_rss_gb"],
                             "seconds": card["seconds"], "dim": card["dim"]}
        if args.kill:
            cut = target + "-killed"
            subprocess.run(["rm", "-rf", cut])
            resume = killed_and_resumed(extract_command(images, preset, cut, precision, args.batch_size), cut,
                                        args.images)
            result[precision]["resume"] = {**resume, "byte_identical": digest(cut) == digest(target)}
    print(json_text(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
