"""The recipe as a chain of pure rules: reasons replaced by topic, never by their text, and rules that copy."""

import copy

import pytest

from tfxc.recipe import RECIPE, Context, DataProfile, Reason
from tfxc.recipe.chain import merged, render, run
from tfxc.recipe.points import FAST_RULES, POINTS


def test_a_later_reason_replaces_the_earlier_of_its_topic_where_it_stood():
    first = [Reason("head", "softmax"), Reason("encoder", "1024 wide"), Reason("training", "58 epochs")]
    later = merged(first, [Reason("encoder", "256 wide"), Reason("precision", "bfloat16"), Reason("training", None)])
    assert render(later) == ["head: softmax", "encoder: 256 wide", "precision: bfloat16"]
    assert render(first) == ["head: softmax", "encoder: 1024 wide", "training: 58 epochs"]  # left alone
    # Withdrawn, then given again: it goes last, as a new topic does.
    assert [r.topic for r in merged(later, [Reason("head", None), Reason("head", "tree")])] == [
        "encoder", "precision", "head"]
    assert Reason("estimate", "fast ~1 s", heading="time (estimated)").line() == "time (estimated): fast ~1 s"


PROFILES = {
    "tree, sparse": DataProfile(90_000, 100_000, 100_000, 5.0, 76.0, 0.6),
    "tree, dense": DataProfile(50_000, 512, 50_000, 1.0, 512.0, 0.5),
    "one label": DataProfile(3_000, 5_000, 90, 1.0, 60.0, 0.3),
    "decoupled": DataProfile(4_392, 1_836, 159, 2.38, 68.3, 0.2),
    "label sets": DataProfile(7_000, 15_200, 90, 1.6, 76.9, 0.4),
}


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("context", [Context(), Context(centroids=(0.95, 1.0), label_sets=True, validation=False,
                                                        data={"format": "jsonl", "text": {"ngram_max": 2}})])
def test_every_rule_copies_and_never_changes_what_it_was_given(name, context):
    profile, config, reasons = PROFILES[name], {}, []
    for rule in (*RECIPE, *FAST_RULES):
        before = copy.deepcopy(config)
        out, new = rule(profile, config, context)
        assert config == before, rule.__name__  # the input is as it was
        assert all(isinstance(reason, Reason) for reason in new), rule.__name__
        if out != config:
            assert out is not config, rule.__name__
        config, reasons = out, merged(reasons, new)
    # The chain gives the same: fast is the recipe's rules, then fast's.
    assert (config, reasons) == run(POINTS["fast"][1:], profile, context)


def test_fast_replaces_the_recipes_reasons_by_topic():
    profile = PROFILES["decoupled"]
    _, recipe = run(RECIPE, profile, Context())
    _, fast = run(FAST_RULES, profile, Context(), *run(RECIPE, profile, Context()))
    assert [r.topic for r in fast] == [r.topic for r in recipe]  # the same topics, in the same places
    changed = {old.topic for old, new in zip(recipe, fast) if old != new}
    assert changed == {"encoder", "precision", "training", "selection"}
    assert next(r for r in fast if r.topic == "encoder").text.startswith("a 256-wide bag of features")
