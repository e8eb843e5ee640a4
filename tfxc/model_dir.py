"""The one doorway to a trained model directory: its files, config, data, checkpoints, lock and parts.

The layout of a model directory, and the records a training run leaves there (run_info.json, metrics.json,
eval_log.jsonl, the selected weights in best/), are `tfxc.model_files`; a head's parts trained apart are
`tfxc.model_parts`; `ModelDir` adds the rest.

`train`, `evaluate`, `export`, `train.sh`, the tools and the tests reach a
trained model only through `ModelDir`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import NamedTuple

from tfxc.compat import TRAINED_CONFIG, unstamped, upgrade
from tfxc.config.compare import flat_differences, stored_form, stored_tree
from tfxc.config.roles import CADENCE, LAYOUT, LENGTH, PREDICTION, read_in_training, role_of
from tfxc.errors import ConfigError, TfxcError, TrainingError
from tfxc.model_files import CHECKPOINT_DIR, CONFIG_FILE, LOCK_FILE, ModelFiles
from tfxc.model_parts import HeadParts
from tfxc.utils.display import json_text
from tfxc.utils.files import read_text
from tfxc.utils import checkpoint_state
from tfxc.utils.io import atomic_directory
from tfxc.utils.locks import DirectoryLock

log = logging.getLogger("tfxc.model_dir")

# The roles of the settings a resumed run may change (`tfxc.config.roles`): everything else changes the model,
# the data or the optimisation, and a resumed run would silently mix two experiments.
RESUMABLE_ROLES = (LENGTH, CADENCE, PREDICTION, LAYOUT)
# The roles of the settings a `--set` may change on a trained model read for use (evaluate, predict, export,
# `tfxc.load`): how it ranks and where it runs. The rest would describe another model than the weights hold.
TRAINED_MODEL_ROLES = (PREDICTION, LAYOUT)


# How often `restore_newest_intact` lists the checkpoints again after one vanished under it (a training
# rotating them faster than a restore reads one would otherwise keep it busy for ever).
_RELISTS = 20


class TrainedModel(NamedTuple):
    """A restored model with what it was trained with."""

    config: object  # ExperimentConfig
    model: object  # XCModel
    info: object  # DatasetInfo


class ModelDir(HeadParts, ModelFiles):
    """A model directory (see the module docstring; its paths and run records are `ModelFiles`').

    Args:
      path: the directory (it need not exist yet).
    """

    def lock(self, what: str) -> DirectoryLock:
        """Takes the directory for a writing run (`what`, e.g. "tfxc.train"); a second one is refused."""
        return DirectoryLock(self.path, self.file(LOCK_FILE), what)

    # === Checkpoints ===
    def checkpoints(self) -> list[str]:
        """Checkpoint paths, newest first; the files on disk when the state file does not agree with them
        (`tfxc.utils.checkpoint_state.checkpoints`)."""
        return checkpoint_state.checkpoints(self.checkpoint_dir)

    def repair_checkpoint_state(self) -> None:
        """Rewrites a state file that `checkpoints` does not believe (before a training's CheckpointManager
        reads it; `tfxc.utils.checkpoint_state.repair`)."""
        checkpoint_state.repair(self.checkpoint_dir)

    def latest_checkpoint(self) -> str | None:
        found = self.checkpoints()
        return found[0] if found else None

    def latest_step(self) -> int | None:
        """The step number of the newest checkpoint (None without one)."""
        latest = self.latest_checkpoint()
        return None if latest is None else int(latest.rsplit("-", 1)[1])

    def restore_newest_intact(self, restore) -> str | None:
        """Calls `restore(path)` on the newest checkpoint, falling back to older ones if it is unreadable.

        A checkpoint cut short or damaged on disk (a full disk, a crash mid-copy) fails to restore; the
        next older one is then used, with a warning naming the bad one. A checkpoint that vanished meanwhile
        (a training writing this directory rotated it away, `trainer.keep_checkpoints`) is not damage: the
        directory is listed again and its newest checkpoint restored. If none restores, the newest one's
        error is raised. Returns the path restored, or None without checkpoints.
        """
        for _ in range(_RELISTS):
            candidates = self.checkpoints()
            first_error, rotated = None, False
            for path in candidates:
                try:
                    restore(path)
                except Exception as e:  # truncated: IndexError; flipped bits: DataLossError; missing: NotFoundError
                    if path not in self.checkpoints():  # rotated away between listing and reading: list again
                        log.info("checkpoint %s was removed while it was read (a training rotates this "
                                 "directory's checkpoints); restoring the newest one again", path)
                        rotated = True
                        break
                    first_error = first_error or e
                    log.warning("checkpoint %s cannot be restored (%s: %s); trying the one before it", path,
                                type(e).__name__, str(e).strip().splitlines()[0][:200] if str(e).strip() else "")
                    continue
                if path != candidates[0]:
                    log.warning("restored %s instead of the newest checkpoint %s, which is unreadable", path,
                                candidates[0])
                return path
            if not rotated:
                break
        if first_error is not None:
            raise first_error
        return None

    # === Config ===
    def load_config(self, overrides=(), trust_imports=False):
        """The config the model was trained with, with `--set` overrides of its prediction settings applied.

        Args:
          overrides: `--set` assignments of settings in `TRAINED_MODEL_ROLES` (`eval.*`, `export.*`,
            `model.head.prediction.*`, `runtime.strategy`, ...).
          trust_imports: which of the config's `imports` may be imported, which runs their code: True for
            all, or an iterable of module names (see `tfxc.config.loading.trusted_imports`). By default
            none that is not imported already: a model directory may come from someone else. Modules are
            never imported from files inside the directory, trusted or not.

        Raises:
          ConfigError: the config is invalid, imports modules that are not trusted, or an override changes
            a setting the trained weights depend on.
        """
        from tfxc.config.loading import load_config_data, read_json

        if not os.path.exists(self.config_path):
            raise TfxcError(f"{self.path}: not a tfxc model directory (no {CONFIG_FILE})")
        stored = upgrade(TRAINED_CONFIG, read_json(self.config_path), self.config_path)
        config = load_config_data(stored, overrides, origin=self.config_path, trust_imports=trust_imports,
                                  model_dir=self.path)
        if overrides:
            self._check_trained_model_changes(load_config_data(stored, (), origin=self.config_path,
                                                               trust_imports=trust_imports, model_dir=self.path),
                                              config, overrides)
        return config

    def _check_trained_model_changes(self, trained, config, overrides) -> None:
        """Refuses `overrides` that change a setting outside `TRAINED_MODEL_ROLES` (by its declared role,
        `tfxc.config.roles`), naming each."""
        from tfxc.config import to_dict

        changes = flat_differences(to_dict(trained), to_dict(config), by_name=True)
        # `imports` names code the config needs (custom heads, encoders); whether it may run is trust_imports' call.
        wrong = sorted(key for key in changes if key != "imports" and role_of(config, key) not in TRAINED_MODEL_ROLES)
        if wrong:
            raise ConfigError(
                f"--set {' '.join(overrides)}: {', '.join(wrong)} would describe another model than the one "
                f"trained in {self.path}; a trained model takes the settings of how it ranks and where it runs "
                "(eval.*, export.*, model.head.prediction.*, runtime.strategy: tfxc.config.roles). Train a "
                "model with the change instead")

    def config_text(self) -> str | None:
        """The stored config.json as written (None if there is none)."""
        if not os.path.exists(self.config_path):
            return None
        return read_text(self.config_path)

    def write_config(self, config) -> None:
        """Writes `config` as config.json, its data paths made absolute (`stored_form`)."""
        from tfxc.config import save_config

        save_config(stored_form(config), self.config_path)

    def check_resume(self, config, allow_changes: bool = False) -> None:
        """Refuses to resume a checkpoint under a config that changes a setting of no role in `RESUMABLE_ROLES`.

        Args:
          config: the new `ExperimentConfig`.
          allow_changes: resume anyway (the changed keys are logged), e.g. to fine-tune with another
            learning rate on purpose.

        Raises:
          TrainingError: naming every changed key that is not safe to change.
        """
        if self.config_text() is None or self.latest_checkpoint() is None:
            return  # nothing to resume: this run starts afresh and writes its own config.json
        changes = self.config_changes(config)
        unsafe = {k: v for k, v in changes.items()
                  if role_of(config, k) not in RESUMABLE_ROLES or read_in_training(config, k)}
        for key, (old, new) in changes.items():
            if key not in unsafe:
                log.info("resuming with %s changed: %s -> %s", key, json_text(old), json_text(new))
        if not unsafe:
            return
        listed = "; ".join(f"{k}: {json_text(old)} -> {json_text(new)}" for k, (old, new) in sorted(unsafe.items()))
        if allow_changes:
            log.warning("resuming %s with a changed config (--allow-changed-config): %s", self.path, listed)
            return
        raise TrainingError(f"{self.path} holds a checkpoint trained with another config ({listed}); resuming "
                            "would mix two experiments. Use another --model-dir, or --allow-changed-config to "
                            "continue from the checkpoint on purpose")

    def config_changes(self, config) -> dict[str, tuple]:
        """{dotted key: (stored value, value in `config`)} for every setting `config` changes from config.json."""
        from tfxc.config import to_dict

        try:  # read through today's schema: an option added since then counts at its default, not as a change
            trained = to_dict(stored_form(self.load_config()))
        except TfxcError as error:  # a stored config today's schema rejects, or whose imports are not trusted (their
            # code is not run for a comparison): compare the text as written, if it is a JSON object at all
            try:
                trained = json.loads(self.config_text())
            except ValueError:
                trained = None
            if not isinstance(trained, dict):
                raise error from None
            trained = stored_tree(unstamped(TRAINED_CONFIG, upgrade(TRAINED_CONFIG, trained, self.config_path)))
        return flat_differences(trained, to_dict(stored_form(config)))

    # === Data ===
    def bind_data(self, info, resuming: bool) -> None:
        """Keeps a copy of the data's card in `dataset/`, or checks the data against the copy kept.

        Args:
          info: the `DatasetInfo` being trained on.
          resuming: a checkpoint exists; then the data must be the data it was trained on.

        Raises:
          TrainingError: resuming on data that was converted differently since.
        """
        from tfxc.data.usage import add_dependent

        if os.path.isdir(self.dataset_dir) and resuming:
            if not self.bound_data().same_data_as(info):
                raise TrainingError(self._data_changed(info.dir))
        else:
            with atomic_directory(self.dataset_dir, marker="stats.json") as tmp:
                info.copy_card(tmp)
        add_dependent(info.dir, self.dataset_dir)  # converting other data into info.dir keeps this one aside

    def refuse_other_data(self, info) -> None:
        """Raises unless a run of this directory may train on `info`, a conversion not yet in place.

        `tfxc.data.convert.ensure_converted(accept=...)` calls it before a new conversion replaces the
        data directory: a directory with a checkpoint resumes only on the data it was trained on, and
        refusing here leaves the old conversion (which the model may still be evaluated on) untouched.

        Raises:
          TrainingError: this directory holds a checkpoint trained on other data.
        """
        bound = self.bound_data()
        if bound is None or self.latest_checkpoint() is None and self.best() is None:
            return
        if not bound.same_data_as(info):
            raise TrainingError(f"{self.path} holds a model trained on other data than these sources give (its "
                                f"data card is in {self.dataset_dir}); nothing was converted. Train into another "
                                "--model-dir, or give the sources it was trained on")

    def bound_data(self):
        """The `DatasetInfo` of the copy in `dataset/` (sizes, labels, featurizer; no shards), or None."""
        from tfxc.data.info import DatasetInfo

        return DatasetInfo.load(self.dataset_dir) if os.path.isdir(self.dataset_dir) else None

    def bound_rows(self, data_dir: str):
        """The `DatasetInfo` (shards included) of the data this model was trained on: the conversion in
        `data_dir`, or the one kept aside when `data_dir` was converted again since. This process then holds
        a lease on `data_dir` (`tfxc.data.usage`), as a training does.

        Raises:
          TfxcError: neither holds it.
        """
        from tfxc.data.usage import conversion_for, take_lease

        bound = self.bound_data()
        if os.path.isdir(os.path.dirname(os.path.abspath(data_dir))):
            take_lease(data_dir)  # first: no conversion replaces the rows while this process reads them
        info = conversion_for(data_dir, bound)
        if info is None:
            _raise_if_damaged(data_dir)  # a damaged card is not other data: name the damaged file
            raise TfxcError(self._data_changed(data_dir))
        if os.path.abspath(info.dir) != os.path.abspath(data_dir):
            log.info("%s was converted again since %s was trained; its rows are read from %s", data_dir,
                     self.path, info.dir)
        return info

    def _data_changed(self, data_dir: str) -> str:
        return (f"the data in {data_dir} is not the data {self.path} was trained on (it was converted again, "
                f"with other options or sources; the model's copy is in {self.dataset_dir}). Convert into "
                "another data.dir, or train into another --model-dir")

    # === Restoring ===
    def restore(self, config=None, overrides=(), part: int | None = None, need_rows: bool = True) -> TrainedModel:
        """Builds the model and loads its selected weights (best/), else its newest intact checkpoint, else
        (a head trained in parts, not merged) assembles it from its parts (`assemble`).

        Args:
          config: the config to build from (default: this directory's, with `overrides`).
          overrides: `--set` overrides for the stored config.
          part: this directory holds one part of a head trained in parts (see `Head.num_parts`).
          need_rows: the caller reads the data's rows (evaluation): they must be the rows the model was
            trained on. Without, the model's own copy of the data card serves (export), so an export
            carries the labels and featurizer it was trained with even if the data moved on.

        Raises:
          TfxcError: the data changed since training (with `need_rows`).
          TrainingError: there is no checkpoint yet.
        """
        from tfxc._tf import tf
        from tfxc.build_context import BuildContext
        from tfxc.data.folds import converted_dir
        from tfxc.data.info import DatasetInfo
        from tfxc.model import build_model

        config = config or self.load_config(overrides)
        bound = self.bound_data()
        if need_rows or bound is None:
            data_dir = converted_dir(config.data)
            info = DatasetInfo.load(data_dir) if bound is None else self.bound_rows(data_dir)
        else:
            info = bound
        if (part is None and not os.path.isdir(self.best_dir) and not self.checkpoints()
                and self.has_finished_parts(config)):
            return TrainedModel(config, self.assemble(config, info), info)  # trained in parts, not merged
        model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed,
                                                                 model_dir=self.path, part=part))
        from tfxc.optimizers.averaging import build_average

        average = build_average(config.trainer, model)  # checkpoints then also hold the average, which is used
        checkpoint = tf.train.Checkpoint(model=model, **({} if average is None else {"average": average}))
        selected = self.use_selected(model, lambda: self._restore_newest(checkpoint), average)
        if selected is not None:
            log.info("restored the selected weights of step %d (%s %.2f on val)", selected["step"],
                     selected["metric"], selected["value"])
        return TrainedModel(config, model, info)

    def _restore_newest(self, checkpoint) -> None:
        """Restores the newest intact checkpoint into `checkpoint` (a model and its average, for `restore`).

        Raises:
          TrainingError: there is none, or none fits.
        """
        try:
            restored = self.restore_newest_intact(
                lambda path: checkpoint.restore(path).expect_partial().assert_existing_objects_matched())
        except Exception as e:  # every checkpoint fails: damaged, or another model's
            raise TrainingError(f"{self.path}: no checkpoint in {CHECKPOINT_DIR}/ can be restored into the model "
                                f"its config builds ({type(e).__name__}: {str(e).strip()[:300]})") from None
        if restored is None:
            raise TrainingError(f"{self.path}: no checkpoint found in {CHECKPOINT_DIR}/; train first")


def _raise_if_damaged(data_dir: str) -> None:
    """Raises the error that names the damaged file when `data_dir` holds a conversion whose card cannot be read."""
    from tfxc.data.info import STATS_FILE, DatasetInfo

    if os.path.exists(os.path.join(data_dir, STATS_FILE)):
        DatasetInfo.load(data_dir)
