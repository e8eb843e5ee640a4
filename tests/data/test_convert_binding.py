"""A conversion and the runs that read it: contents, not time stamps, decide whether to convert again; a
directory a running process reads is never replaced under it; a model refuses other data before anything of
its own is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, SHARED_DATA, cli_env, run_cli

from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.data.usage import DataInUse, release_data
from tfxc.data.info import DatasetInfo
from tfxc.errors import TrainingError


def xc_data(tmp_path, name: str, *, dir_name: str = "data", train: str | None = None):
    """The data section of `../shared/data/NAME` (its train file replaced by `train` if given)."""
    sets = ["data.format=xc", f"data.dir={tmp_path / dir_name}",
            f"data.train={train or os.path.join(SHARED_DATA, name, 'train.txt')}",
            f"data.test={os.path.join(SHARED_DATA, name, 'test.txt')}"]
    return load_config(None, sets).data


def copy_of(shared_data, tmp_path, name="medical") -> str:
    path = tmp_path / f"{name}-train.txt"
    path.write_bytes(open(os.path.join(shared_data, name, "train.txt"), "rb").read())
    return str(path)


def permuted_labels(source: str, out) -> str:
    """`source` (XC text) with every label id l replaced by (l + 1) mod L: same shape, other data."""
    lines = open(source, encoding="utf-8").read().splitlines()
    num_labels = int(lines[0].split()[2])
    body = []
    for line in lines[1:]:
        labels, _, features = line.partition(" ")
        shifted = ",".join(str((int(x) + 1) % num_labels) for x in labels.split(",")) if labels else ""
        body.append(f"{shifted} {features}")
    out.write_text("\n".join([lines[0], *body]) + "\n")
    return str(out)


def test_a_touched_source_with_the_same_bytes_is_not_converted_again(shared_data, tmp_path):
    data = xc_data(tmp_path, "medical", train=copy_of(shared_data, tmp_path))
    first = ensure_converted(data)
    stats = os.path.join(first.dir, "stats.json")
    before = (os.stat(stats).st_mtime_ns, open(stats).read())
    fingerprint = first.fingerprint()  # read from the directory, which is about to change
    os.utime(data.train, ns=(1, 1))  # what `cp -r`, `git checkout` or `rsync` without -t do
    again = ensure_converted(data)
    assert (os.stat(stats).st_mtime_ns, open(stats).read()) == before
    assert again.fingerprint() == fingerprint
    # Other bytes are other sources: converted again, and other data.
    lines = open(data.train, encoding="utf-8").read().splitlines()
    n, d, l = lines[0].split()
    open(data.train, "w", encoding="utf-8").write("\n".join([f"{int(n) + 1} {d} {l}", *lines[1:], "0 1:1.0"]) + "\n")
    changed = ensure_converted(data)
    assert changed.num_points("train") == first.num_points("train") + 1 and changed.fingerprint() != fingerprint
    release_data(data.dir)


def test_the_same_rows_converted_twice_are_the_same_data_and_shuffled_rows_are_not(shared_data, tmp_path):
    source = copy_of(shared_data, tmp_path)
    a = ensure_converted(xc_data(tmp_path, "medical", dir_name="a", train=source))
    b = ensure_converted(xc_data(tmp_path, "medical", dir_name="b", train=source))
    assert a.same_data_as(b) and a.has_row_digests
    lines = open(source, encoding="utf-8").read().splitlines()
    shuffled = tmp_path / "shuffled.txt"
    shuffled.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    c = ensure_converted(xc_data(tmp_path, "medical", dir_name="c", train=str(shuffled)))
    assert c.label_freq.tolist() == a.label_freq.tolist()  # the card alone cannot tell them apart
    assert not c.same_data_as(a)


HOLDER = textwrap.dedent("""
    import sys, time
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    ensure_converted(load_config(None, sys.argv[1:]).data)
    print("reading", flush=True)
    time.sleep(120)
""")


def test_a_directory_another_process_reads_is_not_replaced(shared_data, tmp_path):
    """D1: the shards of a running training are never swapped for another conversion."""
    data = xc_data(tmp_path, "medical", train=copy_of(shared_data, tmp_path))
    sets = ["data.format=xc", f"data.dir={data.dir}", f"data.train={data.train}", f"data.test={data.test}"]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, *sets], cwd=REPO, env=cli_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert holder.stdout.readline().strip() == "reading"
        stats = open(os.path.join(data.dir, "stats.json")).read()
        other = xc_data(tmp_path, "medical", train=permuted_labels(data.train, tmp_path / "perm.txt"))
        with pytest.raises(DataInUse, match="a running tfxc process reads"):
            ensure_converted(other)
        assert open(os.path.join(data.dir, "stats.json")).read() == stats
        assert ensure_converted(data).dir == data.dir  # reading it too is fine
    finally:
        holder.kill()
        holder.wait()
    fingerprint = DatasetInfo.load(data.dir).fingerprint()
    assert ensure_converted(other).fingerprint() != fingerprint  # once nobody reads it, it may be replaced
    release_data(data.dir)


def test_accept_refuses_a_conversion_before_it_replaces_anything(shared_data, tmp_path):
    data = xc_data(tmp_path, "medical")
    fingerprint = ensure_converted(data).fingerprint()
    release_data(data.dir)
    other = xc_data(tmp_path, "medical", train=permuted_labels(data.train, tmp_path / "perm.txt"))

    def refuse(info):
        assert info.fingerprint() != fingerprint
        raise TrainingError("bound elsewhere")

    with pytest.raises(TrainingError, match="bound elsewhere"):
        ensure_converted(other, accept=refuse)
    assert DatasetInfo.load(data.dir).fingerprint() == fingerprint
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]  # no half-written sibling left


def bibtex_config(tmp_path, shared_data, train: str | None = None, steps: int = 40) -> str:
    config = {"data": {"format": "xc", "train": train or f"{shared_data}/bibtex/train.txt",
                       "test": f"{shared_data}/bibtex/test.txt", "dir": str(tmp_path / "shared-data")},
              "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "one_vs_all"}},
              "optimizer": {"name": "adam", "learning_rate": 0.001},
              "trainer": {"global_batch_size": 128, "train_steps": steps, "steps_per_loop": 10,
                          "log_every_steps": 20, "checkpoint_every_steps": 20}}
    path = tmp_path / f"bib-{len(os.listdir(tmp_path))}.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.slow(reason='kills or signals a process of its own')
def test_a_second_training_on_other_sources_cannot_convert_under_a_running_one(shared_data, tmp_path):
    """D1 through the CLI: B, on other sources in A's data.dir, is refused while A trains; A's data stays."""
    a_config = bibtex_config(tmp_path, shared_data, steps=100000)
    a = subprocess.Popen([sys.executable, "-m", "tfxc.train", "--config", a_config, "--model-dir",
                          str(tmp_path / "A")], cwd=REPO, env=cli_env(), text=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        for line in a.stderr:  # A has converted its data and is training
            if "step 20" in line or "saved" in line:
                break
        stats = open(tmp_path / "shared-data" / "stats.json").read()
        perm = permuted_labels(f"{shared_data}/bibtex/train.txt", tmp_path / "perm.txt")
        result = run_cli("tfxc.train", "--config", bibtex_config(tmp_path, shared_data, train=perm),
                         "--model-dir", str(tmp_path / "B"), check=False)
        assert result.returncode == 2 and "a running tfxc process reads" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert open(tmp_path / "shared-data" / "stats.json").read() == stats
        assert a.poll() is None  # A trains on
    finally:
        os.killpg(a.pid, 9)
        a.wait()


@pytest.mark.slow(reason='time: bibtex trained, converted again and resumed')
def test_a_refused_resume_on_other_data_leaves_the_model_and_its_data_as_they_were(shared_data, tmp_path):
    """D4: the refusal comes before the conversion, so evaluate still works and the original command resumes."""
    source = copy_of(shared_data, tmp_path, "bibtex")
    config = bibtex_config(tmp_path, shared_data, train=source, steps=20)
    model = str(tmp_path / "model")
    run_cli("tfxc.train", "--config", config, "--model-dir", model)
    stats = open(tmp_path / "shared-data" / "stats.json").read()
    perm = permuted_labels(f"{shared_data}/bibtex/train.txt", tmp_path / "perm.txt")
    other = bibtex_config(tmp_path, shared_data, train=perm, steps=20)
    result = run_cli("tfxc.train", "--config", other, "--model-dir", model, "--allow-changed-config", check=False)
    assert result.returncode == 2 and "trained on other data" in result.stderr and "nothing was converted" in \
        result.stderr, result.stderr[-2000:]
    assert open(tmp_path / "shared-data" / "stats.json").read() == stats
    assert "P@1" in run_cli("tfxc.evaluate", "--model-dir", model).stdout
    # The same bytes under a new mtime are the same data: the original command resumes (to 40 steps).
    os.utime(source, ns=(1, 1))
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model, "--set", "trainer.train_steps=40")
    assert "resumed from" in result.stderr


EVALUATOR = textwrap.dedent("""
    import sys, time
    from tfxc.model_dir import ModelDir
    ModelDir(sys.argv[1]).restore(need_rows=True)  # what tfxc.evaluate does before it reads the rows
    print("reading", flush=True)
    time.sleep(120)
""")


def test_an_evaluation_holds_its_rows_too(tmp_path):
    """A process evaluating a model (`restore(need_rows=True)`) leases its data like a training."""
    from helpers import tiny_config

    config = tiny_config(tmp_path, trainer={"train_steps": 4, "checkpoint_every_steps": 4})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "m"), "--skip-eval")
    reader = subprocess.Popen([sys.executable, "-c", EVALUATOR, str(tmp_path / "m")], cwd=REPO, env=cli_env(),
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert reader.stdout.readline().strip() == "reading"
        other = load_config(config, ["data.synthetic.seed=4"]).data  # other rows into the same data.dir
        with pytest.raises(DataInUse):
            ensure_converted(other)
    finally:
        reader.kill()
        reader.wait()
