"""The `data` section of the experiment config: where the data comes from, how JSONL text becomes TF-IDF
features, and the generated (synthetic) sets (`tfxc.config.schema` holds the other sections)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tfxc.config.validation import require as _require
from tfxc.data.readers import FORMATS as SOURCE_FORMATS
from tfxc.data.text_features import ACCENTS, MAX_NGRAM
from tfxc.data.text_terms import TOKENIZERS

__all__ = ["DATA_FORMATS", "DataConfig", "ImageDataConfig", "SyntheticConfig", "TextFeaturesConfig"]

# Converted TFRecords as they are, every source format of the readers' table, or generated data.
DATA_FORMATS = ("tfrecord", *SOURCE_FORMATS, "synthetic")


@dataclass(frozen=True)
class SyntheticConfig:
    """A generated extreme multi-label set (`data.format = "synthetic"`).

    Labels have power-law (Zipf) frequencies; each label owns a small set of
    "topic" features, and a point's features are drawn from its labels' topics
    plus uniform noise, so the labels are learnable from the features.

    Attributes:
      num_train: training points.
      num_test: test points.
      num_features: feature-space size.
      num_labels: label-space size.
      labels_per_point: mean number of labels per point (at least 1).
      features_per_label: size of each label's topic.
      features_per_point: mean number of nonzero features per point.
      noise: fraction of a point's features drawn uniformly at random.
      zipf_exponent: label frequency ~ rank^-zipf_exponent.
      seed: generator seed; the same seed gives byte-identical files.
    """

    num_train: int = 20000
    num_test: int = 5000
    num_features: int = 10000
    num_labels: int = 2000
    labels_per_point: float = 3.0
    features_per_label: int = 20
    features_per_point: int = 40
    noise: float = 0.3
    zipf_exponent: float = 1.0
    seed: int = 0

    def validate(self, path: str) -> None:
        _require(self.num_train > 0 and self.num_test > 0, f"{path}: num_train and num_test must be > 0")
        _require(self.num_labels >= 2, f"{path}.num_labels ({self.num_labels}) must be >= 2")
        _require(self.features_per_label * 2 <= self.num_features,
                 f"{path}.features_per_label ({self.features_per_label}) must be at most half of "
                 f"num_features ({self.num_features})")
        _require(0.0 <= self.noise < 1.0, f"{path}.noise ({self.noise}) must be in [0, 1)")
        _require(self.labels_per_point >= 1.0, f"{path}.labels_per_point ({self.labels_per_point}) must be >= 1")


@dataclass(frozen=True)
class TextFeaturesConfig:
    """TF-IDF features for JSONL text sets (fit on the train split only; `tfxc.data.text_features`).

    Attributes:
      ngram_max: 1 for words, 2 for words and word bigrams, 3 adds trigrams. On Chinese or Japanese text,
        where every character is a token, these are character n-grams.
      min_df: drop tokens in fewer training documents than this.
      max_features: keep at most this many tokens (most frequent first); 0 = all.
      tokens: "unicode" (any script: letters, digits and marks; CJK and Thai characters one by one) or
        "ascii" (``[a-z0-9]+`` runs only, tfxc's first tokenizer).
      accents: "keep" them ("café" and "cafe" are two terms) or "fold" them away (one term).
    """

    ngram_max: int = 1
    min_df: int = 2
    max_features: int = 0
    tokens: str = "unicode"
    accents: str = "keep"

    def validate(self, path: str) -> None:
        _require(1 <= self.ngram_max <= MAX_NGRAM, f"{path}.ngram_max ({self.ngram_max}) must be in [1, {MAX_NGRAM}]")
        _require(self.min_df >= 1, f"{path}.min_df ({self.min_df}) must be >= 1")
        _require(self.max_features >= 0, f"{path}.max_features ({self.max_features}) must be >= 0")
        _require(self.tokens in TOKENIZERS, f"{path}.tokens '{self.tokens}' is not one of {', '.join(TOKENIZERS)}")
        _require(self.accents in ACCENTS, f"{path}.accents '{self.accents}' is not one of {', '.join(ACCENTS)}")
        _require(self.accents == "keep" or self.tokens == "unicode",
                 f"{path}.accents 'fold' is for tokens 'unicode' (the ascii tokenizer drops accented letters)")


@dataclass(frozen=True)
class ImageDataConfig:
    """How labelled image sources are read (`data.format = "images"`; `tfxc.images.sources`).

    Each of data.train / test / val is a folder per class (ImageNet's layout), webdataset shards (a .tar file,
    a brace range or glob of them, or a directory of them) or a CSV catalog (a .csv file).

    Attributes:
      label_entry: the webdataset entry holding the label: "cls" (an integer class id) or a name entry ("txt").
      path_column: a catalog's column of image paths.
      label_column: a catalog's class column (e.g. a taxon level).
      root: what catalog paths are relative to (default: the catalog's folder).
    """

    label_entry: str = "cls"
    path_column: str = "path"
    label_column: str = "label"
    root: str = ""

    def validate(self, path: str) -> None:
        _require(bool(self.label_entry and self.path_column and self.label_column),
                 f"{path}: label_entry, path_column and label_column must not be empty")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is fed.

    Training always reads sharded TFRecords from `dir`. If `format` is not
    "tfrecord", the source files are converted into `dir` first (once; the
    conversion is cached and redone only when the sources or options change).
    Relative paths are taken from the current working directory.

    Attributes:
      format: one of tfrecord, xc (Extreme Classification Repository BoW text),
        pecos (X/Y .npz), jsonl ({"text", "labels"}), dense (.npy features),
        synthetic (generated, see `synthetic`).
      dir: the converted TFRecord directory.
      train: train source (xc text file, pecos X npz, jsonl file, dense npy).
      test: test source, same kind as `train`; optional (without one, training
        ends without the final test evaluation).
      val: optional validation source, same kind as `train`; periodic evaluation
        during training uses it (and the test split only at the end).
      val_percent: without a `val` source, carve one from the train source: this share
        (percent) of its groups goes to validation instead of training, chosen by the md5 of
        the group key (`tfxc.data.holdout`; the same split as `tools/holdout_split.py`).
      val_fold: k-fold training: "i/K" holds out fold i (0-based) of K as validation, the groups
        whose md5 mod K is i. The sources are converted once for all K folds, each fold read from its view
        `dir`/fold-i-of-K (`tfxc.data.folds`); train K models on "0/K" ... "K-1/K", ensemble them with
        `python -m tfxc.ensemble --method log_average` (text_classifier's averaged-logit k-fold; with
        `--out-of-fold FILE` also each train point predicted by the fold that held it out), or distil them
        into one student (`loss.teachers`). "*/K" trains all K as the parts of one ensemble directory
        (`tfxc.runs.folds`; `train.sh` runs them in parallel).
      val_groups: a JSONL file of the train points (same order; for the jsonl format, the
        train file itself) whose `id` up to `val_group_sep` is each point's group, so
        near-duplicate points (one document's windows) stay on one side. Default: every
        point is its own group.
      val_group_sep: see `val_groups`.
      train_labels: labels of `train` for pecos (Y npz) and dense formats.
      test_labels: labels of `test` for pecos and dense formats.
      val_labels: labels of `val` for pecos and dense formats.
      source_dir: instead of the files: dense, `{train,val,test}/{features,labels}.npy` (val optional); pecos,
        a PECOS xmc-base set (X.{trn,tst}.txt, Y.*.npz, tfidf-attnxml/X.*.npz), rows with their text.
      label_names: optional labels.txt (one name per line, line i = label i).
      num_classes: the label count, declared (0: the largest label id + 1, or the count the source states).
        Declare it when a split may lack the last labels (SCENT's feature sets: a head sized from the train
        split's largest id would be short of the classes only val or test hold); ids at or past it are refused.
      index_base: 1 for header-less XC files with 1-based feature ids.
      num_shards: TFRecord shards written for the train split.
      shuffle_buffer: examples in the shuffle buffer (>= train size = full shuffle).
      group_by_length: 0, or global training batches regrouped together by text length (64: each run of 64
        shuffled batches becomes 64 batches of texts of about one length, in random order): a text
        transformer pads each batch to its longest text, so this cuts its steps' cost for texts of uneven
        length (`tfxc.data.pipeline.train_dataset`).
      text: TF-IDF options for the jsonl format.
      synthetic: options of the synthetic format.
      images: how the images format reads its sources.
    """

    format: str = "tfrecord"
    dir: str = ""
    train: str = ""
    test: str = ""
    val: str = ""
    val_percent: int = 0
    val_fold: str = ""
    val_groups: str = ""
    val_group_sep: str = ":"
    train_labels: str = ""
    test_labels: str = ""
    val_labels: str = ""
    source_dir: str = ""
    label_names: str = ""
    num_classes: int = 0
    index_base: int = 0
    num_shards: int = 4
    shuffle_buffer: int = 100000
    group_by_length: int = 0
    text: TextFeaturesConfig = field(default_factory=TextFeaturesConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    images: ImageDataConfig = field(default_factory=ImageDataConfig)

    def validate(self, path: str) -> None:
        _require(self.format in DATA_FORMATS,
                 f"{path}.format '{self.format}' is not one of {', '.join(DATA_FORMATS)}")
        _require(bool(self.dir), f"{path}.dir must name the TFRecord directory")
        if self.source_dir:
            _require(self.format in ("dense", "pecos"), f"{path}.source_dir is for 'dense' or 'pecos' data")
            _require(not any((self.train, self.test, self.val, self.train_labels, self.test_labels,
                              self.val_labels)),
                     f"{path}: give either source_dir or the train/test/val files, not both")
        elif self.format not in ("tfrecord", "synthetic"):
            _require(bool(self.train), f"{path}: format '{self.format}' needs a 'train' source file")
            if self.format in ("pecos", "dense"):
                for split in ("train", "test", "val"):
                    _require(bool(getattr(self, split)) == bool(getattr(self, split + "_labels")),
                             f"{path}: format '{self.format}' needs '{split}' and '{split}_labels' together")
        _require(0 <= self.val_percent < 100, f"{path}.val_percent ({self.val_percent}) must be in [0, 100)")
        _require(not (self.val_percent and self.val),
                 f"{path}: give either a val source or val_percent (a share of train to hold out), not both")
        if self.val_fold:
            from tfxc.data.holdout import parse_fold

            try:
                parse_fold(self.val_fold)
            except ValueError:
                _require(False, f"{path}.val_fold '{self.val_fold}' must be 'i/K' with K >= 2 and 0 <= i < K, or '*/K'")
            _require(not (self.val_percent or self.val),
                     f"{path}: val_fold holds out a fold of train; give no val source or val_percent with it")
            _require(self.format != "tfrecord", f"{path}.val_fold splits sources while converting; format 'tfrecord' "
                     "is already converted")
        _require(not self.val_groups or self.val_percent or self.val_fold,
                 f"{path}.val_groups is for val_percent or val_fold")
        _require(self.format != "tfrecord" or not self.val_percent,
                 f"{path}.val_percent splits sources while converting; format 'tfrecord' is already converted")
        _require(self.num_classes >= 0, f"{path}.num_classes ({self.num_classes}) must be >= 0 (0: inferred)")
        _require(not self.num_classes or self.format not in ("tfrecord", "synthetic"),
                 f"{path}.num_classes is declared while converting sources; format '{self.format}' has its count")
        _require(self.index_base in (0, 1), f"{path}.index_base ({self.index_base}) must be 0 or 1")
        _require(self.num_shards >= 1, f"{path}.num_shards ({self.num_shards}) must be >= 1")
        _require(self.shuffle_buffer >= 1, f"{path}.shuffle_buffer ({self.shuffle_buffer}) must be >= 1")
        _require(self.group_by_length >= 0, f"{path}.group_by_length ({self.group_by_length}) must be >= 0")
        self.text.validate(path + ".text")
        self.images.validate(path + ".images")
        if self.format == "synthetic":
            self.synthetic.validate(path + ".synthetic")
