"""The argument order of `tfxc.fit` before 2026-11-26, `fit(config, X, Y)`: still read, with a warning
naming today's spelling; any other positional use is refused."""

from __future__ import annotations

import warnings

import pytest

from tfxc.compat.deprecations import fit_arguments


def is_config(value):
    return isinstance(value, (str, dict))


def test_todays_order_passes_through_without_a_word():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_arguments("c.json", "X", "Y", (), is_config) == ("c.json", "X", "Y")


def test_the_old_order_is_read_with_a_deprecation_warning_naming_the_new_spelling():
    with pytest.warns(DeprecationWarning, match=r"write tfxc.fit\(X, Y, config=config\)"):
        assert fit_arguments(None, "c.json", "X", ("Y",), is_config) == ("c.json", "X", "Y")


def test_other_positional_uses_are_refused():
    with pytest.raises(TypeError, match="fit takes the features and labels as its positional arguments"):
        fit_arguments("c.json", "X", "Y", ("Z",), is_config)
    with pytest.raises(TypeError):
        fit_arguments(None, 3, "X", ("Y",), is_config)


def test_the_warning_points_at_the_call_of_fit(tmp_path):
    import tfxc

    import numpy as np

    from tfxc.errors import DataError

    with pytest.warns(DeprecationWarning) as caught:
        with pytest.raises(DataError, match="rows"):  # refused after the order is read, before anything is written
            tfxc.fit({"recipe": True}, np.ones((3, 2), np.float32), [[0]], model_dir=str(tmp_path / "m"), verbose=0)
    assert caught[0].filename == __file__


# === Names and flags given up for `tfxc.load`'s one interface ===
@pytest.mark.parametrize("module", ["tfxc", "tfxc.api", "tfxc.predictors"])
def test_classifier_is_the_predictor_of_earlier_releases_with_a_warning(module):
    import importlib

    namespace = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}.Classifier is the name of earlier releases .*; "
                                                rf"write {module}.Predictor"):
        assert namespace.Classifier is namespace.Predictor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hasattr(namespace, "Classifer")


def test_predict_reads_saved_model_as_the_old_spelling_of_model(tmp_path, capsys):
    from tfxc import predict
    from tfxc.errors import ConfigError, TfxcError

    rows, out, missing = tmp_path / "rows.txt", str(tmp_path / "out.jsonl"), str(tmp_path / "no-model")
    rows.write_text("1 2:0.5\n")
    args = ["--input", str(rows), "--output", out]
    # The old flag's value is the model the run reads: here one that is not there, named in the error.
    with pytest.raises(TfxcError, match="no-model"):
        predict.main.__wrapped__(["--saved-model", missing, *args])
    assert f"--saved-model {missing} is deprecated; write --model {missing}" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="name two models; give --model"):
        predict.main.__wrapped__(["--saved-model", missing, "--model", str(tmp_path), *args])
