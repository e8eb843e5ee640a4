"""Streaming XMC metrics against hand-computed values and brute-force dense references."""

import functools
import math

import numpy as np
import pytest

import tfxc.eval.metrics as metrics_module
from tfxc.eval.metrics import XmcMetrics
from tfxc.data.propensity import propensities
from tfxc.kernels import HAVE_COMPILED_KERNELS, hits_matrix_numpy

ALL_KS = (1, 2, 3, 4, 5)
G = 1.0 / math.log2(3)  # discount of position 2 (j = 1): 0.6309297535714575


@pytest.fixture(params=["default", "numpy"], autouse=True)
def backend(request, monkeypatch):
    """Runs every test with the default hit kernel (Cython when built) and with the NumPy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(metrics_module, "hits_matrix", hits_matrix_numpy)
    elif not HAVE_COMPILED_KERNELS:
        pytest.skip("compiled kernel not built; the 'numpy' variant covers the fallback")
    return request.param


# --- helpers ---------------------------------------------------------------------------


def to_csr(rows):
    """List of label lists -> (indptr, indices) with sorted rows."""
    rows = [np.sort(np.asarray(r, dtype=np.int64)) for r in rows]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows + [np.zeros(0, np.int64)]).astype(np.int64)
    return indptr, indices


def random_problem(seed, n_rows=60, num_labels=15, width=6, max_labels=8, pad_frac=0.15):
    """Dense Y [N, L] (some empty rows, some with > 5 labels) and distinct top-`width` ids with -1 padding."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n_rows, num_labels), dtype=np.int64)
    for i in range(n_rows):
        c = 0 if rng.random() < 0.15 else rng.integers(1, max_labels + 1)
        y[i, rng.choice(num_labels, size=c, replace=False)] = 1
    scores = rng.random((n_rows, num_labels)) + 0.6 * y  # a decent but imperfect ranker
    pred = np.argsort(-scores, axis=1)[:, :width].astype(np.int64)
    pred[rng.random(pred.shape) < pad_frac] = -1  # padding anywhere, not only at the tail
    freq = rng.integers(0, 300, size=num_labels)
    p = propensities(freq, num_points=1000)
    return y, pred, p


def dense_to_csr(y):
    return to_csr([np.flatnonzero(r) for r in y])


def reference_loop(pred, y, inv_p, ks):
    """Per-row brute force straight from the definitions (pure Python, dense Y)."""
    n = y.shape[0]
    out = {}
    for k in ks:
        p_sum = r_sum = ndcg_sum = 0.0
        psp_num = psp_den = psn_num = psn_den = 0.0
        for i in range(n):
            truth = set(np.flatnonzero(y[i]).tolist())
            top = [int(t) for t in pred[i, :k]]
            hit = [1 if (t >= 0 and t in truth) else 0 for t in top]
            p_sum += sum(hit) / k
            r_sum += sum(hit) / max(len(truth), 1)
            if not truth:
                continue
            idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(truth))))
            ndcg_sum += sum(h / math.log2(j + 2) for j, h in enumerate(hit)) / idcg
            if inv_p is not None:
                ideal = sorted((inv_p[t] for t in truth), reverse=True)[:k]
                psp_num += sum(h * inv_p[t] for h, t in zip(hit, top))
                psp_den += sum(ideal)
                psn_num += sum(h * inv_p[t] / math.log2(j + 2) for j, (h, t) in enumerate(zip(hit, top))) / idcg
                psn_den += sum(w / math.log2(j + 2) for j, w in enumerate(ideal)) / idcg
        out[f"P@{k}"] = 100 * p_sum / n
        out[f"R@{k}"] = 100 * r_sum / n
        out[f"nDCG@{k}"] = 100 * ndcg_sum / n
        if inv_p is not None:
            out[f"PSP@{k}"] = 100 * psp_num / psp_den
            out[f"PSnDCG@{k}"] = 100 * psn_num / psn_den
    return out


def reference_pyxclib_style(pred, y, inv_p, kmax):
    """Dense transcription of pyxclib's vectorised xc_metrics formulas (padding -> extra column L)."""
    n, num_labels = y.shape
    idx = np.where(pred[:, :kmax] < 0, num_labels, pred[:, :kmax])
    y_pad = np.hstack([y, np.zeros((n, 1))])
    flags = np.take_along_axis(y_pad, idx, axis=1)

    def _precision(f):
        return np.mean(np.cumsum(f, axis=1) / (np.arange(kmax) + 1), axis=0)

    def _ndcg(f, norm):
        dcg = np.cumsum(f / np.log2(np.arange(kmax) + 2), axis=1)
        cum, res = 0.0, []
        for k in range(kmax):
            cum += 1 / np.log2(k + 2)
            res.append(np.mean(dcg[:, k] / np.minimum(norm, cum)))
        return np.array(res)

    total = y.sum(axis=1).astype(int)
    cs = np.cumsum(1 / np.log2(np.arange(1, max(total.max(), kmax) + 1) + 1))
    norm = cs[total - 1]  # pyxclib's quirk: empty rows index cs[-1]; their DCG is 0 anyway
    deno = np.maximum(total, 1)
    out = {"P": _precision(flags), "nDCG": _ndcg(flags, norm),
           "R": np.mean(np.cumsum(flags, axis=1) / deno[:, None], axis=0)}
    if inv_p is not None:
        inv_pad = np.concatenate([inv_p, [0.0]])
        ps_idx = np.argsort(-(y * inv_p[None, :]), axis=1, kind="stable")[:, :kmax]
        ps_flags = inv_pad[ps_idx] * np.take_along_axis(y_pad, ps_idx, axis=1)
        ev = inv_pad[idx] * flags
        out["PSP"] = _precision(ev) / _precision(ps_flags)
        out["PSnDCG"] = _ndcg(ev, norm) / _ndcg(ps_flags, norm)
    return {f"{name}@{k + 1}": 100 * float(v[k]) for name, v in out.items() for k in range(kmax)}


def assert_results_close(got, expected, tol=1e-9):
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=0, abs=tol), key


# --- hand-computed examples ------------------------------------------------------------

# Three rows, L = 6, predictions top-3:
#   row 0: y = {0, 2}, pred [2, 1, 0]  -> hits [1, 0, 1]
#   row 1: y = {3},    pred [4, 3, -1] -> hits [0, 1, 0]
#   row 2: y = {},     pred [0, 1, 2]  -> hits [0, 0, 0]
# propensities p = [0.5, 0.25, 1, 0.2, 1, 1] -> weights w = 1/p = [2, 4, 1, 5, 1, 1]
HAND_PRED = np.array([[2, 1, 0], [4, 3, -1], [0, 1, 2]])
HAND_INDPTR, HAND_INDICES = to_csr([[0, 2], [3], []])
HAND_P = np.array([0.5, 0.25, 1.0, 0.2, 1.0, 1.0])


def test_hand_example():
    m = XmcMetrics(ks=(1, 2, 3), propensities=HAND_P)
    m.update(HAND_PRED, HAND_INDPTR, HAND_INDICES)
    r = m.result()
    idcg0 = 1 + G  # row 0 has 2 labels: IDCG@2 = IDCG@3 = 1 + 1/log2(3)
    expected = {
        # P@k = sum_i hits_i@k / (N k), N = 3 (the empty row counts)
        "P@1": 100 * (1 + 0 + 0) / (3 * 1),  # 33.33
        "P@2": 100 * (1 + 1 + 0) / (3 * 2),  # 33.33
        "P@3": 100 * (2 + 1 + 0) / (3 * 3),  # 33.33
        # R@k = mean_i hits_i@k / max(|y_i|, 1)
        "R@1": 100 * (1 / 2 + 0 + 0) / 3,  # 16.67
        "R@2": 100 * (1 / 2 + 1 / 1 + 0) / 3,  # 50
        "R@3": 100 * (2 / 2 + 1 / 1 + 0) / 3,  # 66.67
        # nDCG: row 0 DCG@1 = DCG@2 = 1, DCG@3 = 1 + 1/log2(4) = 1.5; row 1 DCG@2 = DCG@3 = 1/log2(3) = G, IDCG = 1
        "nDCG@1": 100 * (1 / 1 + 0 + 0) / 3,  # 33.33
        "nDCG@2": 100 * (1 / idcg0 + G / 1) / 3,  # (0.613147 + 0.630930) / 3 = 41.47
        "nDCG@3": 100 * (1.5 / idcg0 + G / 1) / 3,  # (0.919721 + 0.630930) / 3 = 51.69
        # PSP: numerator = weights of hits, denominator = the k largest weights of each row's labels
        #   row 0 labels {0: 2, 2: 1} -> ideal [2, 1]; row 1 {3: 5} -> ideal [5]
        "PSP@1": 100 * (1) / (2 + 5),  # row 0 hits label 2 (w 1) at j=0 -> 14.29
        "PSP@2": 100 * (1 + 5) / (2 + 1 + 5),  # + row 1 hits label 3 (w 5) at j=1 -> 75
        "PSP@3": 100 * (1 + 2 + 5) / (2 + 1 + 5),  # + row 0 hits label 0 (w 2) at j=2 -> 100
        # PSnDCG: per-row weighted DCG / unweighted IDCG, summed, over the same for the ideal ranking
        "PSnDCG@1": 100 * (1 / 1) / (2 / 1 + 5 / 1),  # 14.29
        "PSnDCG@2": 100 * (1 / idcg0 + 5 * G / 1) / ((2 + 1 * G) / idcg0 + 5 / 1),  # 3.768 / 6.613 = 56.98
        "PSnDCG@3": 100 * ((1 + 2 / 2) / idcg0 + 5 * G / 1) / ((2 + 1 * G) / idcg0 + 5 / 1),  # 4.381 / 6.613 = 66.25
    }
    assert_results_close(r, expected, tol=1e-12)
    assert r["nDCG@2"] == pytest.approx(41.469232, abs=1e-6)
    assert r["PSnDCG@3"] == pytest.approx(66.245965, abs=1e-6)
    assert r["num_points"] == 3
    assert list(r) == ["P@1", "P@2", "P@3", "nDCG@1", "nDCG@2", "nDCG@3", "R@1", "R@2", "R@3",
                       "PSP@1", "PSP@2", "PSP@3", "PSnDCG@1", "PSnDCG@2", "PSnDCG@3", "num_points"]


def test_multiclass_accuracy():
    # labels [1, 0, 2, 2]; top-1 predictions [1, 2, 2, 0] -> hits [1, 0, 1, 0] -> Acc@1 = 2/4 = 50%
    # top-2 hits: [1, 1, 1, 0] -> P@2 = 3 / (4 * 2) = 37.5%, R@2 = 3/4 = 75%
    pred = np.array([[1, 0], [2, 0], [2, 1], [0, -1]])
    labels = np.array([1, 0, 2, 2])
    m = XmcMetrics(ks=(1, 2), multiclass=True)
    m.update(pred, np.arange(5), labels)
    r = m.result()
    assert r["Acc@1"] == 50.0 and r["P@1"] == 50.0 and r["P@2"] == 37.5 and r["R@2"] == 75.0
    # label_indptr=None means one label per row in multiclass mode
    m2 = XmcMetrics(ks=(1, 2), multiclass=True)
    m2.update(pred, None, labels)
    assert m2.result() == r
    assert "Acc@1" not in XmcMetrics(ks=(1,)).result()


def test_padding_counts_as_miss_and_still_divides_by_k():
    # y = {0}, pred [0, -1, -1]: hits@3 = 1 -> P@3 = 1/3, R@3 = 1, nDCG@3 = 1, PSP@3 = 100
    m = XmcMetrics(ks=(1, 3), propensities=np.full(4, 0.5))
    m.update(np.array([[0, -1, -1]]), np.array([0, 1]), np.array([0]))
    r = m.result()
    assert r["P@1"] == 100.0 and r["P@3"] == pytest.approx(100 / 3, abs=1e-12)
    assert r["R@3"] == 100.0 and r["nDCG@3"] == 100.0 and r["PSP@3"] == 100.0 and r["PSnDCG@3"] == 100.0
    # -1 padding gives the same numbers as predicting labels that are never relevant
    y, pred, p = random_problem(11)
    indptr, indices = dense_to_csr(y)
    never = np.where(pred < 0, 100 + np.arange(pred.size).reshape(pred.shape), pred)
    a, b = XmcMetrics(ks=ALL_KS), XmcMetrics(ks=ALL_KS)
    a.update(pred, indptr, indices)
    b.update(never, indptr, indices)
    assert a.result() == b.result()


def test_rows_without_labels():
    # Adding m label-less rows scales the means by N / (N + m) and leaves PSP / PSnDCG unchanged.
    y, pred, p = random_problem(5)
    indptr, indices = dense_to_csr(y)
    base = XmcMetrics(ks=ALL_KS, propensities=p)
    base.update(pred, indptr, indices)
    extra = XmcMetrics(ks=ALL_KS, propensities=p)
    extra.update(pred, indptr, indices)
    extra.update(np.tile(pred[:1], (20, 1)), np.zeros(21, np.int64), np.zeros(0, np.int64))
    rb, re = base.result(), extra.result()
    n = y.shape[0]
    assert re["num_points"] == n + 20
    for k in ALL_KS:
        for name in ("P", "R", "nDCG"):
            assert re[f"{name}@{k}"] == pytest.approx(rb[f"{name}@{k}"] * n / (n + 20), rel=1e-12)
        for name in ("PSP", "PSnDCG"):
            assert re[f"{name}@{k}"] == pytest.approx(rb[f"{name}@{k}"], rel=1e-12)
    # only label-less rows: everything 0 (PSP's 0/0 is reported as 0)
    only = XmcMetrics(ks=(1, 2), propensities=p)
    only.update(np.array([[0, 1], [-1, -1]]), np.zeros(3, np.int64), np.zeros(0, np.int64))
    assert all(v == 0.0 for key, v in only.result().items() if key != "num_points")


def test_empty_accumulator_is_nan():
    r = XmcMetrics(ks=(1, 3), propensities=np.full(3, 0.5), multiclass=True).result()
    assert r["num_points"] == 0
    assert all(math.isnan(v) for key, v in r.items() if key != "num_points")


# --- brute-force references on random problems -------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_against_loop_reference(seed):
    y, pred, p = random_problem(seed)
    indptr, indices = dense_to_csr(y)
    m = XmcMetrics(ks=ALL_KS, propensities=p)
    m.update(pred, indptr, indices)
    got = m.result()
    assert set(got) == {f"{n}@{k}" for n in ("P", "R", "nDCG", "PSP", "PSnDCG") for k in ALL_KS} | {"num_points"}
    assert_results_close(got, reference_loop(pred, y, 1 / p, ALL_KS))
    # without propensities the other numbers are the same
    plain = XmcMetrics(ks=ALL_KS)
    plain.update(pred, indptr, indices)
    assert plain.result() == {k: v for k, v in got.items() if not k.startswith("PS")}


@pytest.mark.parametrize("seed", range(6))
def test_random_against_pyxclib_style_reference(seed):
    y, pred, p = random_problem(100 + seed, n_rows=80, num_labels=20)
    indptr, indices = dense_to_csr(y)
    m = XmcMetrics(ks=ALL_KS, propensities=p)
    m.update(pred, indptr, indices)
    got = m.result()
    assert_results_close(got, reference_pyxclib_style(pred, y, 1 / p, kmax=5))
    for k in ALL_KS:  # bounded by 100 with distinct predictions
        assert 0 <= got[f"PSP@{k}"] <= 100 and 0 <= got[f"PSnDCG@{k}"] <= 100


def test_extra_prediction_columns_are_ignored():
    y, pred, p = random_problem(3, width=9)
    indptr, indices = dense_to_csr(y)
    a, b = XmcMetrics(ks=(1, 3), propensities=p), XmcMetrics(ks=(1, 3), propensities=p)
    a.update(pred, indptr, indices)
    b.update(pred[:, :3], indptr, indices)
    assert a.result() == b.result()


# --- streaming and merging -----------------------------------------------------------------


def _batches(n, sizes):
    bounds = np.concatenate([[0], np.cumsum(sizes), [n]])
    return [(int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("seed", range(3))
def test_streaming_equals_single_batch(seed):
    y, pred, p = random_problem(200 + seed, n_rows=90)
    indptr, indices = dense_to_csr(y)
    whole = XmcMetrics(ks=ALL_KS, propensities=p)
    whole.update(pred, indptr, indices)
    streamed = XmcMetrics(ks=ALL_KS, propensities=p)
    for s, e in _batches(90, [0, 7, 1, 30, 0, 19]):  # includes empty batches
        # slice of the full CSR: indptr[s:e+1] does not start at 0 and indices is passed whole
        streamed.update(pred[s:e], indptr[s:e + 1], indices)
    assert streamed.result()["num_points"] == 90
    assert_results_close(streamed.result(), whole.result(), tol=1e-10)


def test_rebased_csr_slices_equal_offset_slices():
    y, pred, p = random_problem(9)
    indptr, indices = dense_to_csr(y)
    a, b = XmcMetrics(ks=ALL_KS, propensities=p), XmcMetrics(ks=ALL_KS, propensities=p)
    for s, e in _batches(60, [13, 20]):
        a.update(pred[s:e], indptr[s:e + 1], indices)
        b.update(pred[s:e], indptr[s:e + 1] - indptr[s], indices[indptr[s]:indptr[e]].copy())
    assert a.result() == b.result()


def test_merge_shards():
    y, pred, p = random_problem(42, n_rows=75)
    indptr, indices = dense_to_csr(y)
    whole = XmcMetrics(ks=ALL_KS, propensities=p, multiclass=False)
    whole.update(pred, indptr, indices)
    shards = []
    for s, e in _batches(75, [25, 0, 30]):
        shard = XmcMetrics(ks=ALL_KS, propensities=p.copy())  # equal, not identical, propensities
        shard.update(pred[s:e], indptr[s:e + 1], indices)
        shards.append(shard)
    merged = functools.reduce(XmcMetrics.merge, shards)
    assert merged is shards[0]
    assert_results_close(merged.result(), whole.result(), tol=1e-10)
    assert merged.result()["num_points"] == 75


def test_summed_sums_of_shards_load_as_the_whole():
    # What MultiWorkerMirrored evaluation does: each worker's sums() all-reduced, then load_sums().
    y, pred, p = random_problem(7, n_rows=60)
    indptr, indices = dense_to_csr(y)
    whole = XmcMetrics(ks=ALL_KS, propensities=p, multiclass=False)
    whole.update(pred, indptr, indices)
    total = 0
    for s, e in _batches(60, [20, 40]):
        shard = XmcMetrics(ks=ALL_KS, propensities=p)
        shard.update(pred[s:e], indptr[s:e + 1], indices)
        total = total + shard.sums()
    loaded = XmcMetrics(ks=ALL_KS, propensities=p).load_sums(total)
    assert_results_close(loaded.result(), whole.result(), tol=1e-10)
    assert loaded.result()["num_points"] == 60
    with pytest.raises(ValueError, match="sums"):
        loaded.load_sums(total[:-1])


def test_merge_multiclass_and_mismatches():
    pred = np.array([[1, 0], [2, 0], [2, 1], [0, -1]])
    labels = np.array([1, 0, 2, 2])
    a, b = XmcMetrics(ks=(1, 2), multiclass=True), XmcMetrics(ks=(1, 2), multiclass=True)
    a.update(pred[:1], None, labels[:1])  # top-1 hit
    b.update(pred[1:], None, labels[1:])  # 1 hit of 3
    assert a.merge(b).result()["Acc@1"] == 50.0
    with pytest.raises(ValueError, match="ks"):
        XmcMetrics(ks=(1, 2)).merge(XmcMetrics(ks=(1, 3)))
    with pytest.raises(ValueError, match="multiclass"):
        XmcMetrics(ks=(1,)).merge(XmcMetrics(ks=(1,), multiclass=True))
    with pytest.raises(ValueError, match="propensities"):
        XmcMetrics(ks=(1,), propensities=np.full(3, 0.5)).merge(XmcMetrics(ks=(1,)))
    with pytest.raises(ValueError, match="propensities"):
        XmcMetrics(ks=(1,), propensities=np.full(3, 0.5)).merge(XmcMetrics(ks=(1,), propensities=np.full(3, 0.4)))
    with pytest.raises(TypeError):
        XmcMetrics(ks=(1,)).merge({"P@1": 1.0})


def test_reset():
    m = XmcMetrics(ks=(1,))
    m.update(HAND_PRED, HAND_INDPTR, HAND_INDICES)
    m.reset()
    assert m.result()["num_points"] == 0
    m.update(HAND_PRED, HAND_INDPTR, HAND_INDICES)
    assert m.result()["P@1"] == pytest.approx(100 / 3)


# --- input validation ------------------------------------------------------------------------


def test_constructor_validation():
    assert XmcMetrics(ks=[5, 1, 3, 3]).ks == (1, 3, 5)
    with pytest.raises(ValueError, match="ks"):
        XmcMetrics(ks=())
    with pytest.raises(ValueError, match="ks"):
        XmcMetrics(ks=(0, 1))
    with pytest.raises(ValueError, match="propensities"):
        XmcMetrics(propensities=np.array([0.5, 0.0]))
    with pytest.raises(ValueError, match="propensities"):
        XmcMetrics(propensities=np.ones((2, 2)))
    assert XmcMetrics(propensities=np.full(7, 0.5)).num_labels == 7


@pytest.mark.parametrize("case, match", [
    ("narrow", "columns"),
    ("float_pred", "integer"),
    ("pred_1d", "2-D"),
    ("indptr_len", "label_indptr"),
    ("indptr_decreasing", "non-decreasing"),
    ("indptr_past_end", "within"),
    ("unsorted", "sorted"),
    ("duplicate", "sorted"),
    ("negative_label", ">= 0"),
    ("label_ge_L", "L ="),
    ("pred_ge_L", "L ="),
    ("multiclass_two_labels", "exactly one"),
    ("indptr_none", "multiclass"),
])
def test_update_validation(case, match):
    pred = np.array([[0, 1, 2], [3, 4, -1]])
    indptr, indices = np.array([0, 2, 3]), np.array([0, 2, 3])
    kwargs = dict(ks=(1, 3), propensities=np.full(6, 0.5))
    if case == "narrow":
        pred = pred[:, :2]
    elif case == "float_pred":
        pred = pred.astype(np.float32)
    elif case == "pred_1d":
        pred = pred[0]
    elif case == "indptr_len":
        indptr = np.array([0, 3])
    elif case == "indptr_decreasing":
        indptr = np.array([0, 2, 1])
    elif case == "indptr_past_end":
        indptr = np.array([0, 2, 4])
    elif case == "unsorted":
        indices = np.array([2, 0, 3])
    elif case == "duplicate":
        indices = np.array([2, 2, 3])
    elif case == "negative_label":
        indices = np.array([-1, 2, 3])
    elif case == "label_ge_L":
        indices = np.array([0, 2, 6])
    elif case == "pred_ge_L":
        pred = np.array([[0, 1, 2], [3, 6, -1]])
    elif case == "multiclass_two_labels":
        kwargs["multiclass"] = True
    elif case == "indptr_none":
        indptr = None
    with pytest.raises(ValueError, match=match):
        XmcMetrics(**kwargs).update(pred, indptr, indices)


def test_unsorted_across_rows_is_fine():
    # label ids may decrease from one row to the next; only within-row order matters
    m = XmcMetrics(ks=(1,))
    m.update(np.array([[5], [1]]), np.array([0, 1, 2]), np.array([5, 1]))
    assert m.result()["P@1"] == 100.0
