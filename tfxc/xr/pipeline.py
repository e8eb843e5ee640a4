"""An XR-Transformer run: multi-resolution fine-tuning, then the ranker on [TF-IDF ⊕ embedding].

Reference: Zhang et al., "Fast Multi-Resolution Transformer Fine-tuning for Extreme Multi-label Text
Classification" (NeurIPS 2021); PECOS `xmc/xtransformer/model.py`. Spec: algorithms.md §1.6–1.7 and
xr-transformer.md. `python -m tfxc.train` runs it for a config whose head is "xr_transformer"
(`tfxc.heads.xr_transformer`):

  1. the preliminary tree: PECOS's clustering of the TF-IDF's PIFA label features, with the
     head's matcher_* options (MODEL_DIR/preliminary_tree.npz);
  2. one fine-tuned level per tree level with at most max_match_clusters clusters, coarse → fine
     (`tfxc.xr.schedule`): each is a tfxc training run of the encoder under a new `xr_level` head,
     in MODEL_DIR/levels/level-N. The encoder carries over from the previous level; the head starts
     from the bootstrap and trains on tfn/man active sets (`tfxc.xr.levels`);
  3. the ranker, MODEL_DIR's own model: the final encoder, frozen, beside the TF-IDF, under a label
     tree re-clustered on PIFA([TF-IDF ⊕ normalised E]) (unless fix_clustering).

Every level is a resumable run with its own checkpoints, and a finished level is marked
(level.json) and skipped: a run killed anywhere resumes in the level it was in, from its last
checkpoint, and a killed ranker resumes likewise.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import time

from tfxc.errors import ConfigError
from tfxc.heads.label_tree.config import TREE_FILE
from tfxc.model_dir import ModelDir
from tfxc.training.controller import format_duration
from tfxc.utils.io import atomic_write_text
from tfxc.xr.schedule import LevelPlan, one_resolution, plan_levels

log = logging.getLogger("tfxc.xr")

PRELIMINARY_TREE = "preliminary_tree.npz"
ONE_RESOLUTION_TREE = "one_resolution_tree.npz"  # multi_resolution false: the finest level's tree
LEVELS_DIR = "levels"
LEVEL_DONE = "level.json"
RANKER_PREPARED = "ranker_prepared.json"
RANKER_EMBEDDINGS = "ranker_embeddings.npz"  # the final encoder's embedding of train, until the ranker has trained


def level_dir(model_dir: str, index: int) -> str:
    return os.path.join(model_dir, LEVELS_DIR, f"level-{index}")


def preliminary_tree(head, info, model_dir: str):
    """The tree the levels are fine-tuned along: the model directory's, else clustered and saved there."""
    from tfxc.tree import LabelTree, cached_cluster_labels

    path = os.path.join(model_dir, PRELIMINARY_TREE)
    if os.path.exists(path):
        return LabelTree.load(path), path
    tree = cached_cluster_labels(info, max_leaf_size=head.matcher_max_leaf_size, nr_splits=head.matcher_nr_splits,
                                 min_codes=head.matcher_min_codes or None, seed=head.tree_seed,
                                 max_iter=head.kmeans_max_iter, spherical=head.spherical,
                                 skip_unseen=head.skip_unseen_labels)
    tree.save(path)
    return tree, path


def level_config(config, plan: LevelPlan, tree_path: str):
    """The experiment config of one fine-tuned level: the user's, with an `xr_level` head and the level's
    steps and learning-rate schedule (warm-up, then linear decay to 0). No evaluation on the way: a level's
    clusters are not the labels."""
    from tfxc.heads.xr_level import XrLevelHeadConfig

    head = config.model.head
    level_head = XrLevelHeadConfig(tree_file=tree_path, level=plan.tree_level, negatives=head.matcher_negatives,
                                   max_active=head.max_active_matching_labels, loss=head.matcher_loss)
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, head=level_head),
        optimizer=dataclasses.replace(config.optimizer, learning_rate=plan.learning_rate,
                                      warmup_steps=plan.warmup_steps, schedule="linear"),
        # PECOS's loop stops when global_step > max_steps: max_steps + 1 updates.
        trainer=dataclasses.replace(config.trainer, train_steps=plan.steps + 1, eval_every_steps=0,
                                    eval_every_epochs=0.0, select_metric="", patience=0))


def frozen_encoder(model):
    """The ranker's `FrozenUnitEncoder` (under the sparse term's wrapper, if any)."""
    from tfxc.encoders.frozen import FrozenUnitEncoder

    encoder = model.encoder
    while not isinstance(encoder, FrozenUnitEncoder):
        encoder = encoder.inner
    return encoder


def copy_encoder(target_model, source_encoder) -> None:
    """Sets the innermost encoder of `target_model` to `source_encoder`'s weights (the same architecture)."""
    from tfxc.encoders.frozen import base_encoder

    base_encoder(target_model.encoder).set_weights(base_encoder(source_encoder).get_weights())


def run_level(config, plan: LevelPlan, levels: int, tree, tree_path: str, previous, info, strategy, model_dir: str):
    """Fine-tunes one level (resuming it if it has a checkpoint); returns its directory."""
    from tfxc.heads.xr_level import read_start, write_start
    from tfxc.training.trainer import Trainer
    from tfxc.xr.levels import start_of_level

    directory = level_dir(model_dir, plan.index)
    done = os.path.join(directory, LEVEL_DONE)
    if os.path.exists(done):
        log.info("XR level %d/%d (%d clusters): done already", plan.index + 1, levels, plan.clusters)
        return directory
    cfg = level_config(config, plan, tree_path)
    fresh = ModelDir(directory).latest_checkpoint() is None
    previous_model = None
    if previous is not None and fresh:
        previous_model = ModelDir(previous).restore(need_rows=False).model
    prepare_start = time.time()
    if fresh:
        os.makedirs(directory, exist_ok=True)
        write_start(directory, **start_of_level(plan, tree, config.model.head, previous_model, info,
                                                read_start(previous).get("man")))
    prepare_seconds = time.time() - prepare_start
    log.info("XR level %d/%d: %d clusters (tree level %d), %d steps at learning rate %g", plan.index + 1, levels,
             plan.clusters, plan.tree_level, plan.steps + 1, plan.learning_rate)
    start = time.time()
    trainer = Trainer(cfg, directory, info, strategy, final_evaluation=False)
    if previous_model is not None:
        copy_encoder(trainer.components.model, previous_model.encoder)
    # The previous level's model (encoder, head, their weights) is copied: referenced here, it would stay
    # resident through this level's training, on top of what the level's own model holds.
    previous_model = None
    gc.collect()  # a Keras model's layers refer to each other: only a collection frees them
    trainer.train()
    # prepare_seconds: the embedding pass, `man` predictions and bootstrap before the loop (of this process:
    # 0 when the level resumed from a checkpoint).
    atomic_write_text(done, json.dumps({"tree_level": plan.tree_level, "clusters": plan.clusters,
                                        "steps": plan.steps + 1, "train_seconds": round(time.time() - start, 3),
                                        "prepare_seconds": round(prepare_seconds, 3)}, indent=2) + "\n")
    return directory


def fine_tune(config, info, strategy, model_dir: str) -> str | None:
    """Step 2 of the module docstring; returns the last level's directory."""
    head = config.model.head
    tree, tree_path = preliminary_tree(head, info, model_dir)
    plan = plan_levels(tree.sizes, head.max_match_clusters, head.max_steps,
                       head.learning_rates or (config.optimizer.learning_rate,),
                       head.warmup_steps or (config.optimizer.warmup_steps,))
    if not head.multi_resolution:  # the ablation: the finest level alone, as the top of its own tree
        single, tree = one_resolution(plan), tree.below(plan[-1].tree_level)
        tree_path = os.path.join(model_dir, ONE_RESOLUTION_TREE)
        if not os.path.exists(tree_path):
            tree.save(tree_path)
        log.info("XR-Transformer: one resolution: the %d clusters of tree level %d alone, %d steps", single.clusters,
                 plan[-1].tree_level, single.steps + 1)
        plan = [single]
    log.info("XR-Transformer: preliminary tree %s; fine-tuning %d level(s): %s", tree.describe(), len(plan),
             " -> ".join(str(p.clusters) for p in plan))
    previous, start, total = None, time.time(), sum(p.steps + 1 for p in plan)
    done = trained = 0  # steps of the finished levels; of those, trained by this process (not resumed as done)
    for level in plan:
        finished = os.path.exists(os.path.join(level_dir(model_dir, level.index), LEVEL_DONE))
        previous = run_level(config, level, len(plan), tree, tree_path, previous, info, strategy, model_dir)
        done += level.steps + 1
        trained += 0 if finished else level.steps + 1
        elapsed = time.time() - start
        if done < total and trained:
            log.info("XR fine-tuning: %d of %d steps done; %s for the last %d; the remaining levels about %s", done,
                     total, format_duration(elapsed), trained, format_duration(elapsed / trained * (total - done)))
    return previous


def ranker_tree(config, info, encoder, model_dir: str, preliminary_path: str | None):
    """Writes the ranker's tree into the model directory (once): the preliminary tree with fix_clustering, else
    PECOS's clustering of PIFA([TF-IDF ⊕ row-normalised E]) with the ranker's options. Returns (E, Y): the
    encoder's raw embeddings of the training rows (float32 [N, H], row-id order) and their labels (CSR [N, L])."""
    import numpy as np

    from tfxc.tree import LabelTree, cluster_labels, pifa
    from tfxc.xr.levels import concat_features, embed_split, tfidf_rows

    path = os.path.join(model_dir, TREE_FILE)
    head = config.model.head
    embeddings, y = cached_embedding_pass(os.path.join(model_dir, RANKER_EMBEDDINGS), lambda: embed_split(encoder, info))
    if os.path.exists(path):
        return embeddings, y
    if head.fix_clustering and preliminary_path:
        LabelTree.load(preliminary_path).save(path)
        return embeddings, y
    x = concat_features(embeddings, tfidf_rows(info))
    tree = cluster_labels(pifa(x, y.astype(np.float32)), max_leaf_size=head.max_leaf_size, nr_splits=head.nr_splits,
                          min_codes=head.min_codes or None, seed=head.tree_seed, max_iter=head.kmeans_max_iter,
                          spherical=head.spherical, skip_unseen=head.skip_unseen_labels)
    tree.save(path)
    return embeddings, y


def cached_embedding_pass(path: str, embed):
    """`embed()`'s (embeddings float32 [N, H], labels CSR [N, L]), kept at `path`: a run that stops between the
    embedding pass and the ranker's first checkpoint (killed, out of memory) resumes without embedding again."""
    import numpy as np
    import scipy.sparse

    from tfxc.utils.io import atomic_writer

    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as saved:
            y = scipy.sparse.csr_matrix((np.ones(saved["indices"].size, np.int8), saved["indices"], saved["indptr"]),
                                        shape=tuple(saved["shape"]))
            return saved["embeddings"], y
    embeddings, y = embed()
    with atomic_writer(path, binary=True) as f:
        np.savez(f, embeddings=embeddings, indices=y.indices, indptr=y.indptr, shape=np.array(y.shape))
    return embeddings, y


def train_xr_transformer(config, model_dir: str, info, strategy, *, lock=None, final_evaluation: bool = True,
                         ignore_memory_plan: bool = False, allow_changed_config: bool = False) -> dict:
    """Runs the whole pipeline of the module docstring into `model_dir`; returns the ranker's test metrics
    ({} with only_encoder)."""
    from tfxc.training.trainer import Trainer
    from tfxc.xr.levels import EmbeddingModel

    head = config.model.head
    if config.runtime.strategy == "multi_worker_mirrored":
        raise ConfigError("an XR-Transformer run hands state between its stages on one machine: use the default "
                          "or mirrored strategy")
    os.makedirs(model_dir, exist_ok=True)
    try:
        last_level = fine_tune(config, info, strategy, model_dir) if head.do_fine_tune else None
        if head.only_encoder:
            log.info("only_encoder: the fine-tuned encoder is in %s (python -m tfxc.encode -m %s)", last_level,
                     last_level)
            return {}
        fresh, prepare_start = ModelDir(model_dir).latest_checkpoint() is None, time.time()
        encoder = EmbeddingModel.of(config, info, last_level)
        embeddings, y = ranker_tree(config, info, encoder, model_dir,
                                    os.path.join(model_dir, PRELIMINARY_TREE) if head.do_fine_tune else None)
        solved = head.ranker == "xr_linear"
        if solved:
            from tfxc.xr import ranker

            joint, tfidf = ranker.solve(config, info, embeddings, y, model_dir)
            # The solved start is evaluated before any SGD step: the fine-tuning is kept only where it helps.
            config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, eval_at_start=True))
        y = None
        if fresh:  # the embedding pass, the refined tree and the solve before the ranker's loop
            atomic_write_text(os.path.join(model_dir, RANKER_PREPARED), json.dumps(
                {"prepare_seconds": round(time.time() - prepare_start, 3)}) + "\n")
        log.info("XR-Transformer: the ranker on %s", "[TF-IDF (+) normalised embedding]" if head.sparse_support
                 else "the normalised embedding")
        trainer = Trainer(config, model_dir, info, strategy, lock=lock, final_evaluation=final_evaluation,
                          ignore_memory_plan=ignore_memory_plan, allow_changed_config=allow_changed_config)
        lock = None  # the trainer releases it
        model = trainer.components.model
        if fresh:
            copy_encoder(model, encoder.encoder)
        with strategy.scope():  # the frozen encoder's training rows, embedded once
            frozen_encoder(model).cache_training_rows(embeddings)
        if solved and fresh:
            val = trainer.controller.val_evaluator
            _, trainer.controller.start_metrics = ranker.choose_mix(
                config, model.head, joint, tfidf, val.evaluate if val is not None and val.split == "val" else None,
                model_dir)
            joint = tfidf = None
        # Copied into the ranker and its row cache: the last level's restored encoder and the [N, H] array
        # would otherwise stay resident (the array twice, with the cache) through the ranker's training.
        encoder = embeddings = model = None
        gc.collect()
        metrics = trainer.train()
        if os.path.exists(os.path.join(model_dir, RANKER_EMBEDDINGS)):  # the ranker has its checkpoints now
            os.remove(os.path.join(model_dir, RANKER_EMBEDDINGS))
        return metrics
    finally:
        if lock is not None:
            lock.release()
