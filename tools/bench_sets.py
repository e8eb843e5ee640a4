"""The data sets and systems of `tools/bench.py`: which tfxc configs and peers run on which data.

Kept apart from the harness so that its reports (`tools/bench_report.py`) read the same catalogue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PEERS = ("pecos-xrlinear", "napkinxc-plt", "omikuji-parabel", "omikuji-bonsai")


@dataclass(frozen=True)
class Dataset:
    """A benchmark data set: real XC files under the shared data, or a synthetic scale run.

    systems: tfxc system name -> config (path relative to the repository).
    train, test: XC BoW files relative to --shared-data (real sets).
    num_labels: for a generated set, the label count (> 0); its rows come
      from `SCALE_CONFIG`'s `data.synthetic` section with this label count, the
      same generator (and seed) that the tfxc configs convert from.
    generator: further `data.synthetic` settings ("key=value") of a generated set
      shaped like a published one; the scale runs (synthetic-1e4 ...) vary the
      label count alone and have none.
    """

    systems: dict
    train: str = ""
    test: str = ""
    num_labels: int = 0
    generator: tuple[str, ...] = ()

    def overrides(self, name: str, out: str) -> list[str]:
        """--set overrides every tfxc run of this data set gets (generated: its settings and TFRecord cache)."""
        if not self.num_labels:
            return []
        return [f"data.synthetic.num_labels={self.num_labels}",
                *(f"data.synthetic.{setting}" for setting in self.generator),
                f"data.dir={os.path.join(out, 'data', name, 'tfrecord')}"]


SCALE_CONFIG = "configs/scale_synthetic_mach.json"
# The dense softmax head (L × 128 weights) runs up to 10^5 labels: at 10^6 a dense head's training step takes
# over a second (docs/benchmarks-history.md, "Memory and step time as L grows"), most of an hour for two epochs, and at
# 10^7 its weights, Adam slots and [batch, L] logits need far more than 24 GB. MACH's model does not grow with L.
SCALE_MACH = {"tfxc-mach": SCALE_CONFIG}
SCALE_SOFTMAX = {"tfxc-softmax": "configs/scale_synthetic_softmax.json"}
SCALE_TREE = {"tfxc-tree": "configs/scale_synthetic_tree.json"}
SCALE_SYSTEMS = {10**4: {**SCALE_MACH, **SCALE_SOFTMAX, **SCALE_TREE},
                 10**5: {**SCALE_MACH, **SCALE_SOFTMAX, **SCALE_TREE},
                 10**6: {**SCALE_MACH, **SCALE_TREE}, 10**7: {**SCALE_MACH, **SCALE_TREE}}
DATASETS = {
    # The per-set configs (configs/bibtex.json, ...) are thin: the recipe with what won on validation on top.
    # Where that is nothing, the set's tfxc-recipe row stands for its config; the systems here are the
    # head-specific configs.
    "bibtex": Dataset({"tfxc-tree": "configs/tree_bibtex.json"}, "bibtex/train.txt", "bibtex/test.txt"),
    "delicious": Dataset({"tfxc-mach": "configs/mach_delicious.json", "tfxc-tree": "configs/tree_delicious.json",
                          "tfxc-mhc": "configs/mhc_delicious.json"},
                         "delicious/train.txt", "delicious/test.txt"),
    "corel5k": Dataset({}, "corel5k/train.txt", "corel5k/test.txt"),
    "medical": Dataset({}, "medical/train.txt", "medical/test.txt"),
    "yeast": Dataset({}, "yeast/train.txt", "yeast/test.txt"),
    # tfxc-xrt: XR-Transformer from the set's raw text (its JSONL, the same rows in the same order).
    "reuters": Dataset({"tfxc-xrt": "configs/xrt_reuters.json"}, "reuters/train.txt", "reuters/test.txt"),
    "wordnet-hypernyms": Dataset({"tfxc-ova": "configs/ova_wordnet_hypernyms.json",
                                  "tfxc-softmax": "configs/wordnet_hypernyms_softmax.json",
                                  "tfxc-mach": "configs/mach_wordnet_hypernyms.json",
                                  "tfxc-tree": "configs/tree_wordnet_hypernyms.json",
                                  "tfxc-mhc": "configs/mhc_wordnet_hypernyms.json",
                                  "tfxc-xrt": "configs/xrt_wordnet_hypernyms.json"},
                                 "wordnet-hypernyms/train.txt", "wordnet-hypernyms/test.txt"),
    "wordnet-nextword": Dataset({"tfxc-softmax": "configs/wordnet_nextword_softmax.json",
                                 "tfxc-linear": "configs/linear_wordnet_nextword.json",
                                 "tfxc-tree": "configs/tree_wordnet_nextword.json",
                                 "tfxc-mhp": "configs/mhp_wordnet_nextword.json",
                                 "tfxc-mhs": "configs/mhs_wordnet_nextword.json"},
                                "wordnet-nextword/train.txt.gz", "wordnet-nextword/test.txt.gz"),
    **{f"synthetic-{num_labels:.0e}".replace("+0", ""): Dataset(systems, num_labels=num_labels)
       for num_labels, systems in SCALE_SYSTEMS.items()},
    # Amazon-670K's shape (the XMC repository's statistics: 490,449 train and 153,025 test rows, 135,909
    # features, 670,091 labels, ~5.45 labels and ~76 features a row), generated: the real set is not here.
    # zipf_exponent 0.6 leaves ~91% of the labels in train with a median of ~2.4 rows a label (1.0 would leave
    # half the labels unseen); 100 feature draws from 40-feature topics give ~76 distinct features a row.
    "synthetic-670k-shape": Dataset({}, num_labels=670_091, generator=(
        "num_train=490449", "num_test=153025", "num_features=135909", "labels_per_point=5.45",
        "features_per_label=40", "features_per_point=100", "zipf_exponent=0.6")),
}
# Every data set also runs tfxc without a config: `tfxc.train --train X.trn.npz --test X.tst.npz` (the recipe
# of `tfxc.recipe`, chosen from the data; the same matrices the peers read).
RECIPE_SYSTEM = "tfxc-recipe"
# The recipe's points (`tfxc.train --recipe NAME`): the same run as tfxc-recipe, which is the default point.
POINT_SYSTEMS = {"tfxc-fast": "fast", "tfxc-best": "best"}
REAL_DATASETS = [name for name, d in DATASETS.items() if not d.num_labels]
SCALE_DATASETS = [name for name, d in DATASETS.items() if d.num_labels and not d.generator]
# Generated sets shaped like a published one: reported like a real set (a table against the peers), run on request.
SHAPED_DATASETS = [name for name, d in DATASETS.items() if d.generator]
# --quick: two small sets, and tfxc trains for 200 steps only (a smoke test of the harness).
QUICK_DATASETS = ("bibtex", "medical")
QUICK_OVERRIDES = ["trainer.train_steps=200"]
