"""The label tree: levels of nodes, coarse to fine, whose last level is the labels themselves.

A `LabelTree` with T levels has K_0 < K_1 < ... < K_{T−1} = L nodes; every
node of level t ≥ 1 has one parent in level t−1, and level 0 hangs from an
implicit root. It is built from the leaf clusters of balanced 2-means
(`tfxc.tree.kmeans`) with PECOS's chain rule (algorithms.md §1.3, step 4):
above the 2^depth leaf clusters, parent(c) = floor(c / nr_splits) while more
than `min_codes` nodes remain. A user's own taxonomy comes from a TSV file
(`read_tsv`), and any tree round-trips through `save`/`load` (.npz) and
`write_tsv` (readable: one label per line with its ancestors).

A tree may hold only some of the L labels (`leaf_labels`): clustering leaves out
the labels that no training row has, which cannot be learned and, at 10^7
labels, would cost most of the model's memory.
"""

from __future__ import annotations

import hashlib
import math
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from tfxc.data.files import open_text
from tfxc.errors import ConfigError, DataError
from tfxc.utils.io import atomic_writer

TREE_FORMAT = "tfxc-label-tree-1"


@dataclass(frozen=True)
class LabelTree:
    """Levels of nodes above the labels.

    Attributes:
      parents: one int32 array per level t = 1..T−1: parents[t−1][c] is the parent
        (in level t−1) of node c of level t. The last array maps labels to their clusters.
      top_size: K_0, the number of nodes of level 0 (children of the root).
      leaf_labels: None when the last level is all the labels in id order; else int32
        [K_{T−1}], the ascending label id of each last-level node, out of `label_space`.
      label_space: L when `leaf_labels` is given (labels outside the tree are never predicted).
    """

    parents: tuple
    top_size: int
    leaf_labels: np.ndarray | None = None
    label_space: int = 0

    def __post_init__(self):
        if self.leaf_labels is not None:
            leaves, count = self.leaf_labels, (self.parents[-1].size if self.parents else self.top_size)
            if leaves.ndim != 1 or leaves.size != count:
                raise DataError(f"the label tree's leaf_labels has {leaves.size} ids for {count} last-level nodes")
            if leaves.size and (leaves[0] < 0 or leaves[-1] >= self.label_space or np.any(np.diff(leaves) <= 0)):
                raise DataError(f"the label tree's leaf_labels must be ascending ids in [0, {self.label_space})")
        size = self.top_size
        for t, parent in enumerate(self.parents, start=1):
            if parent.ndim != 1 or parent.size < size:
                raise DataError(f"label tree level {t} has {parent.size} nodes, fewer than its parent level ({size})")
            if parent.size and (parent.min() < 0 or parent.max() >= size):
                raise DataError(f"label tree level {t} names parents outside [0, {size})")
            if np.unique(parent).size != size:
                raise DataError(f"label tree level {t - 1} has nodes without children")
            size = parent.size

    # === Construction ===
    @classmethod
    def from_leaf_codes(cls, codes: np.ndarray, num_leaves: int, nr_splits: int = 16,
                        min_codes: int | None = None) -> "LabelTree":
        """The chain above leaf clusters (labels -> `codes` in [0, num_leaves)), PECOS's rule.

        While more than `min_codes` (default `nr_splits`) nodes remain, a parent
        level groups `nr_splits` consecutive codes: parent(c) = floor(c / nr_splits).
        """
        if nr_splits < 2:
            raise ConfigError(f"nr_splits ({nr_splits}) must be >= 2")
        min_codes = nr_splits if min_codes is None else min_codes
        codes = np.asarray(codes, np.int32)
        if num_leaves <= 1:  # one cluster: the labels are the only level
            return cls(parents=(), top_size=codes.size)
        parents, size = [codes], num_leaves
        while size > min_codes:
            parents.insert(0, (np.arange(size) // nr_splits).astype(np.int32))
            size = math.ceil(size / nr_splits)
        return cls(parents=tuple(parents), top_size=size)

    @classmethod
    def from_paths(cls, paths: list[list[str]]) -> "LabelTree":
        """A tree from each label's ancestor names, top-down (a taxonomy).

        Paths shorter than the deepest are padded by repeating their last name,
        which adds single-child nodes, so every label sits at the last level.
        Nodes are numbered in order of first appearance; a name is a node only
        under the same ancestors (the same name under two parents is two nodes).
        """
        if not paths or any(not p for p in paths):
            raise DataError("every label needs at least one ancestor in the taxonomy")
        depth = max(len(p) for p in paths)
        full = [tuple(p) + (p[-1],) * (depth - len(p)) for p in paths]
        ids = [dict() for _ in range(depth)]
        node = np.empty((len(full), depth), np.int32)
        parent_of = [dict() for _ in range(depth)]
        for i, path in enumerate(full):
            for t in range(depth):
                key = path[: t + 1]
                node[i, t] = ids[t].setdefault(key, len(ids[t]))
                if t:
                    parent_of[t][node[i, t]] = node[i, t - 1]
        parents = [np.array([parent_of[t][c] for c in range(len(ids[t]))], np.int32) for t in range(1, depth)]
        parents.append(node[:, -1].copy())
        return cls(parents=tuple(parents), top_size=len(ids[0]))

    def over_labels(self, leaf_labels: np.ndarray, label_space: int) -> "LabelTree":
        """This tree with its last-level nodes standing for the ascending label ids `leaf_labels` of L = label_space."""
        leaf_labels = np.asarray(leaf_labels, np.int32)
        if leaf_labels.size == label_space:  # every label: the plain form
            return LabelTree(parents=self.parents, top_size=self.top_size)
        return LabelTree(parents=self.parents, top_size=self.top_size, leaf_labels=leaf_labels,
                         label_space=label_space)

    def below(self, level: int) -> "LabelTree":
        """The tree from `level` down: its nodes become the top level (the levels above it are dropped)."""
        return LabelTree(parents=self.parents[level:], top_size=self.sizes[level], leaf_labels=self.leaf_labels,
                         label_space=self.label_space)

    # === Shape ===
    @property
    def sizes(self) -> list[int]:
        """Nodes per level, coarse to fine: [K_0, ..., K_{T−1} = L]."""
        return [self.top_size] + [p.size for p in self.parents]

    @property
    def num_levels(self) -> int:
        return len(self.parents) + 1

    @property
    def num_labels(self) -> int:
        """L, the label space (more than the last level's nodes when `leaf_labels` leaves labels out)."""
        return self.sizes[-1] if self.leaf_labels is None else self.label_space

    def leaf_index(self) -> np.ndarray:
        """int32 [L]: the last-level node of each label, −1 for a label outside the tree."""
        if self.leaf_labels is None:
            return np.arange(self.num_labels, dtype=np.int32)
        index = np.full(self.label_space, -1, np.int32)
        index[self.leaf_labels] = np.arange(self.leaf_labels.size, dtype=np.int32)
        return index

    def fingerprint(self) -> str:
        """A digest of the tree's structure: equal for equal trees, whatever object or file holds them."""
        digest = hashlib.sha1(f"{self.top_size} {self.label_space} {len(self.parents)}".encode())
        for array in (*self.parents, *(() if self.leaf_labels is None else (self.leaf_labels,))):
            digest.update(np.ascontiguousarray(array, np.int32).tobytes())
        return digest.hexdigest()

    def leaf_names(self, label_names: list[str]) -> list[str]:
        """The label name of each last-level node."""
        return list(label_names) if self.leaf_labels is None else [label_names[i] for i in self.leaf_labels]

    def children(self, level: int) -> np.ndarray:
        """int32 [K_{level−1}, max fan-out]: the children of each node of level−1 in id order, padded with −1."""
        parent = self.parents[level - 1]
        order = np.argsort(parent, kind="stable")
        counts = np.bincount(parent, minlength=self.sizes[level - 1])
        out = np.full((counts.size, int(counts.max())), -1, np.int32)
        slot = np.arange(parent.size) - np.repeat(np.cumsum(counts) - counts, counts)
        out[parent[order], slot] = order
        return out

    def ancestors(self, level: int) -> np.ndarray:
        """int32 [K_{T−1}]: the node of `level` above each last-level node (the identity at the last level)."""
        node = np.arange(self.sizes[-1], dtype=np.int32)
        for parent in reversed(self.parents[level:]):
            node = parent[node]
        return node

    def fanout(self) -> list[tuple[int, int]]:
        """(min, max) children per node of each level above the labels' own."""
        return [(int(c.min()), int(c.max())) for c in
                (np.bincount(p, minlength=s) for p, s in zip(self.parents, self.sizes[:-1]))]

    def describe(self) -> str:
        fan = ", ".join(f"{lo}-{hi}" for lo, hi in self.fanout())
        return f"{self.num_levels} levels of {self.sizes} nodes" + (f" (children per node: {fan})" if fan else "")

    # === Files ===
    def save(self, path: str) -> None:
        """Writes the tree as an .npz (atomically)."""
        arrays = {f"parents_{t}": p for t, p in enumerate(self.parents)}
        if self.leaf_labels is not None:
            arrays.update(leaf_labels=self.leaf_labels, label_space=np.int64(self.label_space))
        with atomic_writer(path, binary=True) as f:
            np.savez(f, format=np.array(TREE_FORMAT), top_size=np.int64(self.top_size), **arrays)

    @classmethod
    def load(cls, path: str) -> "LabelTree":
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError("not a label tree file: expected an .npz archive, got a single array", path=path)
            with data:
                if "format" not in data.files or str(data["format"]) != TREE_FORMAT:
                    raise DataError(f"not a label tree file (expected format {TREE_FORMAT})", path=path)
                count = sum(1 for name in data.files if name.startswith("parents_"))
                parents = tuple(data[f"parents_{t}"].astype(np.int32) for t in range(count))
                top_size = int(data["top_size"])
                leaf_labels = data["leaf_labels"].astype(np.int32) if "leaf_labels" in data.files else None
                label_space = int(data["label_space"]) if "label_space" in data.files else 0
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read the label tree: {exc}", path=path) from exc
        try:
            return cls(parents=parents, top_size=top_size, leaf_labels=leaf_labels, label_space=label_space)
        except DataError as exc:
            raise DataError(str(exc), path=path) from None

    @classmethod
    def read_tsv(cls, path: str, label_names: list[str], allow_missing: bool = False) -> "LabelTree":
        """A taxonomy: one line per label, `label<TAB>top<TAB>...<TAB>lowest ancestor`.

        `label` is a label name (as in labels.txt) or a label id. Every label
        must appear exactly once, or, with `allow_missing`, at most once (the
        labels not listed are left out of the tree). The file is UTF-8 text,
        plain or gzipped; blank lines are skipped.

        Raises:
          DataError: naming the file, and the line and field where one is at
            fault: a line that is not UTF-8, an unknown or repeated label, a
            missing or empty ancestor, or labels left out of the taxonomy.
        """
        index = {name: i for i, name in enumerate(label_names)}
        paths: list = [None] * len(label_names)
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                fields = line.rstrip("\n").split("\t")
                label = _taxonomy_label(fields[0], index, path, lineno)
                if len(fields) < 2 or not all(fields[1:]):
                    raise DataError("expected label<TAB>ancestor<TAB>... with non-empty ancestors",
                                    path=path, line=lineno, field="ancestors")
                if paths[label] is not None:
                    raise DataError(f"label '{fields[0]}' appears twice", path=path, line=lineno, field="label")
                paths[label] = fields[1:]
        present = np.array([i for i, p in enumerate(paths) if p is not None], np.int32)
        if present.size < len(label_names) and not (allow_missing and present.size):
            missing = [label_names[i] for i, p in enumerate(paths) if p is None]
            raise DataError(f"{len(missing)} labels have no place in the taxonomy, e.g. {missing[:3]}", path=path)
        return cls.from_paths([paths[i] for i in present]).over_labels(present, len(label_names))

    def write_tsv(self, path: str, label_names: list[str]) -> None:
        """The readable form `read_tsv` reads back: label name, then its ancestors as node ids `L<t>:<id>`.

        Only the labels in the tree are written (all, unless `leaf_labels` leaves some out).
        """
        columns = [self.ancestors(t) for t in range(self.num_levels - 1)]
        with atomic_writer(path) as f:
            for label, name in enumerate(self.leaf_names(label_names)):
                f.write(name + "".join(f"\tL{t}:{col[label]}" for t, col in enumerate(columns)) + "\n")


# Label ids in a taxonomy are ASCII digits: str.isdigit() also accepts "²" or "٣", which int() refuses or
# reads as another number.
_LABEL_ID = re.compile(r"[0-9]{1,15}")


def _taxonomy_label(field: str, index: dict[str, int], path: str, lineno: int) -> int:
    """The label id a taxonomy line's first field names: a label name, else a label id in range."""
    label = index.get(field)
    if label is None and _LABEL_ID.fullmatch(field) and int(field) < len(index):
        label = int(field)
    if label is None:
        shown = field if len(field) <= 60 else field[:60] + "..."
        raise DataError(f"unknown label '{shown}': neither a label name nor a label id in [0, {len(index)})",
                        path=path, line=lineno, field="label")
    return label
