"""Runs made of runs: what a config trains, how many members it has, and how they become one model.

Every entry point (`tfxc.train`, `tfxc.fit`, `train.sh`) asks `plan_for(source)` and calls the plan; no
other code decides what kind of run a config is. The kinds:

  Single    one model, trained whole.
  Parts     a head trained in independent parts (MACH's repetitions, Medini et al., 2019): trained together
            in one process, or each by `--part r` and then linked (`--link-parts`) or merged (`--merge-parts`).
  Levels    XR-Transformer (Zhang et al., 2021): fine-tuned levels in sequence, then the ranker; one model.
  Members   the recipe's `best` point: members of the default config that differ in their seed, then combined.
  Folds     k-fold (`data.val_fold` "*/K"): one model per held-out fold, then combined.

A composite model is built from its children's own directories plus one record, as PECOS's
`XTransformer.train/save/load` builds its model from its matcher's and ranker's. `--part N` trains member N
of a plan alone (`part_noun` says what a member is); members never communicate, so `train.sh` runs them as
parallel processes. The directory a plan writes records its kind (`tfxc.artifacts`), and the readers
(`tfxc.load`, `tfxc.evaluate`, `tfxc.export`, `tfxc.predict`) choose how to read it from that record.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, ClassVar, NamedTuple

from tfxc import artifacts
from tfxc.errors import ConfigError
from tfxc.model_files import CONFIG_FILE


@dataclasses.dataclass(frozen=True)
class Options:
    """How an entry point runs a plan.

    Attributes:
      part: train member `part` only (`--part`); nothing is combined.
      link: combine the finished members only (`--link-parts`), training none.
      merge: `link`, and a head's parts written as one checkpoint (`--merge-parts`; `Parts` only).
      final_evaluation: evaluate the finished model on the test split (`--skip-eval` turns it off).
      ignore_memory_plan, allow_changed_config, trust_imports: as `tfxc.training.trainer.Trainer` takes them.
      what: what the directories' locks say holds them ("a tfxc.fit run").
      before_conversion: called under the first lock before the data is converted (`tfxc.fit` writes its
        arrays there).
      announce: called with the recipe's reasons once the config is whole (none for a whole config) and the
        path of the config.json that keeps it (a member's, for a run made of members).
      show: where a composite run reports its members and its combination.
    """

    part: int | None = None
    link: bool = False
    merge: bool = False
    final_evaluation: bool = True
    ignore_memory_plan: bool = False
    allow_changed_config: bool = False
    trust_imports: object = False
    what: str = "a tfxc.train run"
    before_conversion: Callable[[], None] | None = None
    announce: Callable[[list, str], None] = lambda reasons, kept: None
    show: Callable[[str], None] = print


class Outcome(NamedTuple):
    """What a trained plan reports: the test metrics (percent; {} without a test split, without
    `final_evaluation`, for one part, or on a worker that does not write) and, for a single model, the
    frequency baseline's metrics on the same split (None otherwise)."""

    metrics: dict
    baseline: dict | None = None


class RunPlan:
    """A run: its members, how one trains, how the finished ones combine (see the module docstring)."""

    kind: ClassVar[str]
    part_noun: ClassVar[str] = "part"  # what `--part N` names: member N of this kind

    def __init__(self, source, whole=None):
        self.source = source  # a `tfxc.resolve.ConfigSource`
        # Its whole config: a whole source's own; a thin one's once the recipe has read the data (None before).
        self.whole = whole if whole is not None or source.thin else source.config

    def whole_config(self):
        """The whole config, a thin one's resolved (its data converted) on first use."""
        if self.whole is None:
            from tfxc import resolve
            from tfxc.data.convert import ensure_converted

            self.whole = resolve.whole(self.source, ensure_converted(self.source.config.data))[0]
        return self.whole

    def count(self) -> int:
        """How many members can train apart (`tfxc.train --num-parts`; 1: the run trains as a whole)."""
        return 1

    def train(self, model_dir: str, options: Options) -> Outcome:
        """Trains the plan into `model_dir` (or resumes it; finished members are kept), as `options` say."""
        raise NotImplementedError

    def check_part(self, part: int | None) -> None:
        """Refuses a `--part` that is not one of this plan's members (any, for a run that trains whole)."""
        if part is None:
            return
        count = self.count()
        if count == 1:
            raise ConfigError(f"--part: {self.describe()} trains as a whole")
        if not 0 <= part < count:
            raise ConfigError(f"--part {part}: {self.describe()} has {self.part_noun}s 0 to {count - 1}")

    def describe(self) -> str:
        return f"a {self.kind} run"


# === One model ===
class Single(RunPlan):
    """One model trained whole. A thin config is planned as `Single` until its recipe has read the data;
    then the whole config's own kind (`model_plan`) takes over."""

    kind = artifacts.SINGLE

    def count(self) -> int:
        return 1 if self.whole is not None else model_plan(self.source, self.whole_config()).count()

    def train(self, model_dir: str, options: Options) -> Outcome:
        from tfxc.launch import start_run

        if options.link or options.merge:
            return _join_parts(self.source, model_dir, options)
        if self.whole is not None:
            self.check_part(options.part)  # before the data is converted
        run = start_run(self.source, model_dir, part=options.part, what=options.what,
                        allow_changed_config=options.allow_changed_config,
                        before_conversion=options.before_conversion)
        plan = self if self.whole is not None else model_plan(self.source, run.config)
        if plan is not self:
            try:
                plan.check_part(options.part)
            except BaseException:
                if run.lock is not None:
                    run.lock.release()
                raise
        options.announce(run.reasons, os.path.join(run_dir(model_dir, options.part), CONFIG_FILE))
        return plan.train_started(run, model_dir, options)

    def train_started(self, run, model_dir: str, options: Options) -> Outcome:
        """Trains the model of the started `run` (`tfxc.launch.Run`, whose lock it releases)."""
        from tfxc.training.trainer import Trainer

        if run.lock is not None:  # the chief writes the record; the trainer holds the lock from here
            artifacts.record(run_dir(model_dir, options.part), self.kind if options.part is None else artifacts.PART)
        trainer = Trainer(run.config, model_dir, run.info, run.strategy, part=options.part, lock=run.lock,
                          ignore_memory_plan=options.ignore_memory_plan, trust_imports=options.trust_imports,
                          allow_changed_config=options.allow_changed_config,
                          final_evaluation=options.final_evaluation, prepared_from=run.prepared_from)
        metrics = trainer.train()
        evaluator = trainer.controller.evaluator
        if not (trainer.chief and evaluator is not None and metrics):
            return Outcome({})
        return Outcome(metrics, evaluator.frequency_baseline())


class Parts(Single):
    """A head trained in independent parts: `--part r` trains part r into MODEL_DIR/parts/part-NNN;
    `--link-parts` makes MODEL_DIR the model of its finished parts (evaluated one part at a time),
    `--merge-parts` writes them as one checkpoint too; without either, the parts train together."""

    kind = artifacts.PARTS

    def count(self) -> int:
        from tfxc.model import num_parts

        return num_parts(self.whole_config().model)

    def describe(self) -> str:
        return f"a head of {self.count()} parts"


def _join_parts(source, model_dir: str, options: Options) -> Outcome:
    """`--link-parts` / `--merge-parts`: `model_dir` becomes the model of its finished parts (`Parts`)."""
    from tfxc import resolve
    from tfxc.data.convert import ensure_converted
    from tfxc.training.distribute import make_strategy
    from tfxc.training.parts import link_parts, merge_parts

    make_strategy(source.config.runtime)  # first: logical devices must precede TF's start-up
    info = ensure_converted(source.config.data)  # the parts are bound to it; so is the whole model
    config, _ = resolve.whole(source, info)
    if not isinstance(model_plan(source, config), Parts):
        raise ConfigError("--merge-parts and --link-parts are for a run made of members (a head trained in parts, "
                          "the recipe's best point, k-fold); this config trains one model whole")
    (merge_parts if options.merge else link_parts)(config, model_dir, info)
    artifacts.record(model_dir, Parts.kind, artifacts.MODEL_DIR if options.merge else artifacts.LINKED_PARTS)
    return Outcome({})


class Levels(Single):
    """XR-Transformer: the fine-tuned levels in sequence, then the ranker (`tfxc.xr.pipeline`). One model:
    its levels hand state to each other, so none trains apart."""

    kind = artifacts.LEVELS

    def describe(self) -> str:
        return "an XR-Transformer run (its levels train in sequence)"

    def train_started(self, run, model_dir: str, options: Options) -> Outcome:
        from tfxc.xr.pipeline import train_xr_transformer

        if run.lock is not None:
            artifacts.record(model_dir, self.kind)
        metrics = train_xr_transformer(run.config, model_dir, run.info, run.strategy, lock=run.lock,
                                       final_evaluation=options.final_evaluation,
                                       ignore_memory_plan=options.ignore_memory_plan,
                                       allow_changed_config=options.allow_changed_config)
        return Outcome(metrics or {})


def run_dir(model_dir: str, part: int | None) -> str:
    """The directory a run of `model_dir` writes: its own, or that of its part `part`."""
    from tfxc.model_dir import ModelDir

    return model_dir if part is None else ModelDir(model_dir).part(part).path


def model_plan(source, config) -> Single:
    """The plan of one model for the whole `config`: the head says whether its run is levels
    (`Head.runs_in_levels`) or parts (`Head.num_parts` above 1)."""
    from tfxc.model import num_parts, runs_in_levels

    if runs_in_levels(config.model.head.name):
        return Levels(source, config)
    if num_parts(config.model) > 1:
        return Parts(source, config)
    return Single(source, config)
