"""The verdict: every statistic against an independent computation, built effects on fixtures, a real run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fakeruns import falling_swd, make_run, two_experiments
from scipy import stats as sps

from bench.analysis import stats as S
from bench.analysis.stats import seeds_needed
from bench.analysis.verdict import verdict
from bench.store.load import load_run

# ------------------------------------------------------------------ the statistics


@pytest.mark.parametrize("n", [1, 3, 5, 8, 11, 20])
def test_sign_test_equals_scipys_binomial_test(n):
    rng = np.random.default_rng(n)
    for d in (rng.normal(0.3, 1, n), rng.normal(0, 1, n), rng.lognormal(0, 1, n) - 1, -np.abs(rng.normal(size=n))):
        pos = int((d > 0).sum())
        assert S.sign_test(d) == pytest.approx(sps.binomtest(pos, n, 0.5).pvalue, abs=1e-12), d


def test_a_tied_seed_counts_against_significance():
    d = np.array([0.5, 0.7, 0.2, 0.9, 0.4, 0.3, 0.0])  # six wins and one tie
    # the tie is given to the minority: as significant as six wins and one loss, never as six of six
    assert S.sign_test(d) == pytest.approx(sps.binomtest(6, 7, 0.5).pvalue, abs=1e-12)
    assert S.sign_test(d) > sps.binomtest(6, 6, 0.5).pvalue
    assert S.sign_test(np.zeros(5)) == 1.0 and S.smallest_p(7, tied=1) == pytest.approx(2 * 8 / 128)
    assert S.smallest_p(7) == pytest.approx(2 / 128)


def _inverted_by_brute_force(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """The set of shifts t the sign test of d - t does not reject, found on a fine grid of candidate t (every
    value, and points between and beyond them): its smallest and largest member."""
    values = np.unique(d)
    cand = np.concatenate([values, (values[:-1] + values[1:]) / 2, values - 1e-9, values + 1e-9,
                           [values[0] - 1.0, values[-1] + 1.0]])
    keep = [t for t in cand if S.sign_test(d - t) >= alpha]
    lo = -math.inf if min(keep) == values[0] - 1.0 else min(keep)
    hi = math.inf if max(keep) == values[-1] + 1.0 else max(keep)
    return lo, hi


@pytest.mark.parametrize("n", [3, 6, 7, 10, 14])
def test_the_interval_is_the_set_the_sign_test_does_not_reject(n):
    rng = np.random.default_rng(10 + n)
    for _ in range(10):
        d = np.round(rng.normal(0.4, 1, n), 3)
        lo, hi = S.sign_interval(d, 0.05)
        blo, bhi = _inverted_by_brute_force(d, 0.05)
        assert lo == pytest.approx(blo, abs=2e-9) and hi == pytest.approx(bhi, abs=2e-9), (d, lo, hi, blo, bhi)


def test_no_interval_excludes_zero_while_p_is_at_least_alpha():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        n = int(rng.integers(1, 16))
        d = np.round(rng.normal(rng.uniform(-1, 1), 1, n), 1)  # rounding: many ties with zero
        alpha = float(rng.choice([0.01, 0.05, 0.1, 0.25, 0.5]))
        lo, hi = S.sign_interval(d, alpha)
        assert (lo > 0 or hi < 0) == (S.sign_test(d) < alpha), (d, alpha, lo, hi, S.sign_test(d))


@pytest.mark.parametrize("n", [3, 5, 7, 10])
def test_the_interval_covers_the_median_difference_on_normal_heavy_tailed_and_skewed_data(n):
    """2000 simulated experiments per distribution: the 95% interval holds the population median of the
    per-seed differences at least 94% of the time (distribution-free; a mean-based interval, t or bootstrap,
    covers about 85% of lognormal differences at 7 seeds)."""
    rng = np.random.default_rng(100 + n)
    reps = 2000
    for draw, median in ((lambda size: rng.normal(0.3, 1, size), 0.3),
                         (lambda size: 0.3 + rng.standard_t(3, size), 0.3),
                         (lambda size: rng.lognormal(0, 1, size), 1.0)):
        data = draw((reps, n))
        r = S.order_rank(n, 0.05)
        ordered = np.sort(data, axis=1)
        lo = ordered[:, r - 1] if r else np.full(reps, -np.inf)
        hi = ordered[:, n - r] if r else np.full(reps, np.inf)
        assert [S.sign_interval(x, 0.05) for x in data[:50]] == list(zip(lo[:50], hi[:50], strict=True))
        coverage = float(((lo <= median) & (median <= hi)).mean())
        assert coverage >= 0.94, (n, median, coverage)


def test_equivalence_is_two_one_sided_sign_tests():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n, margin = int(rng.integers(3, 15)), float(rng.uniform(0.05, 1))
        d = rng.normal(rng.uniform(-1, 1), 0.5, n)
        lower = sps.binomtest(int((d > -margin).sum()), n, 0.5, alternative="greater").pvalue
        upper = sps.binomtest(int((d < margin).sum()), n, 0.5, alternative="greater").pvalue
        assert S.equivalence_p(d, margin) == pytest.approx(max(lower, upper), abs=1e-12)


def test_probability_of_improvement_has_a_wilson_interval():
    for k, n in ((0, 7), (7, 7), (3, 10), (12, 12), (5, 9)):
        ci = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert S.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert S.wilson(12, 12)[0] < 1 and S.wilson(0, 7)[1] > 0  # never the single point the old bootstrap gave


def _holm_by_definition(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return out


def test_holm_equals_its_definition():
    rng = np.random.default_rng(3)
    for m in (1, 2, 3, 6, 10):
        for _ in range(20):
            p = list(rng.uniform(0, 0.2, m))
            assert S.holm(p) == pytest.approx(_holm_by_definition(p), abs=1e-15)
    assert S.holm([0.01, 0.01, 0.04]) == pytest.approx([0.03, 0.03, 0.04])


def test_seeds_needed_for_a_decisive_verdict():
    assert seeds_needed(1, 0.05) == 6 and seeds_needed(3, 0.05) == 7 and seeds_needed(10, 0.05) == 9
    for pairs, n in ((3, 7), (1, 6)):
        assert pairs * S.smallest_p(n) < 0.05 <= pairs * S.smallest_p(n - 1)
    # one seed reversed: three pairs need 11 seeds (the default faces experiment has 12)
    assert seeds_needed(3, 0.05, reversed_seeds=1) == 11
    assert 3 * sps.binomtest(10, 11, 0.5).pvalue < 0.05 <= 3 * sps.binomtest(9, 10, 0.5).pvalue


# ------------------------------------------------------------------ built effects, no training


def _verdict(tmp_path, seeds, **kwargs):
    run = make_run(tmp_path, optimizers=("sgd", "adam"), seeds=tuple(seeds), steps=60, quality=kwargs.pop("quality"),
                   **kwargs)
    return verdict(load_run(run))


def test_better_in_every_one_of_six_seeds_is_better_and_significant(tmp_path):
    v = _verdict(tmp_path, range(6), quality=falling_swd(better="adam"))
    (c,) = v.primary_comparisons()
    assert (c.a, c.b, c.metric) == ("sgd", "adam", "swd.final") and c.label == "worse" and c.wins == 0
    assert c.p_holm == pytest.approx(2 / 64) and c.p_holm < 0.05 and c.ci[0] > 0
    assert c.estimate == pytest.approx(-math.log(0.7), rel=1e-9) and c.p_improvement == 0.0
    assert c.p_improvement_ci == pytest.approx(list(S.wilson(0, 6)))
    # the built SWD still falls at the end: the verdict is provisional and says why
    assert any(s.startswith("provisional: adam beats sgd on SWD in 6 of 6 seeds: median -30% [-30%, -30%], "
                            "p = 0.0312 (sign test") for s in v.sentences)
    assert v.budget["provisional"] and "sgd, the reference, was still improving" in v.budget["reasons"][0]


def test_the_same_with_three_seeds_is_underpowered_and_says_how_many_are_needed(tmp_path):
    v = _verdict(tmp_path, range(3), quality=falling_swd(better="adam"))
    (c,) = v.primary_comparisons()
    assert c.label == "underpowered" and c.p_holm == pytest.approx(0.25) and c.ci == [-math.inf, math.inf]
    text = "\n".join(v.sentences)
    assert "underpowered: 3 seeds cannot reach p < 0.05 with 1 pair (sign test, Holm); run --seeds 0,1,2,3,4,5" in text


def test_identical_optimizers_are_identical_at_any_seed_count_with_no_division_by_zero(tmp_path):
    v = _verdict(tmp_path, range(2), quality=falling_swd())
    for c in v.comparisons:
        if c.metric.partition(".")[0] in ("swd", "fd_pca", "kid_pca", "coverage", "diversity", "memorisation"):
            assert c.label == "identical" and c.d == [0.0] * 2 and c.p_raw == 1.0 and c.ties == 2, c
    from bench.store.files import json_text

    json.loads(json_text(v.to_json()), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_a_diverged_seed_counts_as_the_worst(tmp_path):
    # adam is better everywhere, but diverged in seed 2: there it is worse than sgd, and the verdict says so
    v = _verdict(tmp_path, range(6), quality=falling_swd(better="adam", factor=0.5), diverge={("adam", 2): 30},
                 state="finished-with-divergence")
    (c,) = v.primary_comparisons()
    d = dict(zip(c.seeds, c.d, strict=True))
    assert d[2] < 0 and all(d[s] > 0 for s in (0, 1, 3, 4, 5))  # log(sgd) - log(adam): negative = adam worse
    assert v.health["adam"][2] == ["diverged at iteration 30"]
    assert "adam failed in 1 of 6 seeds: diverged at iteration 30; it counts as the worst there" in v.sentences
    assert v.divergence["fraction"]["adam"] == pytest.approx(1 / 6)
    assert v.time_to_target["per_seed"]["adam"]["2"]["iterations"] == math.inf


def test_the_health_gate_ranks_the_best_scoring_run_last_when_it_failed(tmp_path):
    """The reference model's failure mode: D wins outright and the samples cover nothing, yet a metric
    could rank them best. The verdict counts them worst and names the failure."""
    def quality(opt, seed, step):
        q = falling_swd()(opt, seed, step)
        if opt == "adam":
            q.update(swd=q["swd"] / 3, coverage=0.0)  # "best" scores, no real image covered
        return q

    v = _verdict(tmp_path, range(7), quality=quality, d_loss={("adam", s): 0.001 for s in range(7)})
    (c,) = v.primary_comparisons()
    assert c.label == "better" and c.wins == 7  # sgd beats the failed adam in every seed
    failure = next(s for s in v.sentences if s.startswith("adam failed"))
    assert failure.startswith("adam failed in 7 of 7 seeds: D wins outright, coverage 0.00")
    assert any("sgd beats adam on SWD in 7 of 7 seeds" in s for s in v.sentences)


def test_equivalence_is_never_said_with_too_few_seeds_and_only_by_two_one_sided_tests(tmp_path):
    """Differences of 1% either way (margin 5%): with 4 seeds nothing can be shown, with 8 the two one-sided sign
    tests show the equivalence."""
    def close(opt, seed, step):
        q = falling_swd()(opt, seed, step)
        return {**q, "swd": q["swd"] * (1 + 0.01 * (-1) ** seed if opt == "adam" else 1.0)}

    few = _verdict(tmp_path / "few", range(4), quality=close)
    many = _verdict(tmp_path / "many", range(8), quality=close)
    (c4,), (c8,) = few.primary_comparisons(), many.primary_comparisons()
    assert c4.label == "underpowered"  # not "equivalent": an interval of few seeds proves nothing
    assert c8.label == "equivalent" and c8.p_equivalence == pytest.approx(1 / 256) and c8.p_equivalence < 0.05


def test_a_zero_or_negative_value_is_never_clipped_into_a_log_ratio(tmp_path):
    def negative(opt, seed, step):
        q = falling_swd("adam")(opt, seed, step)
        return {**q, "swd": -1.0 if (opt, seed) == ("sgd", 0) else q["swd"]}

    v = _verdict(tmp_path, range(6), quality=negative)
    (c,) = v.primary_comparisons()
    assert not c.log_ratio and any("not positive (-1 for sgd seed 0)" in s for s in v.sentences)
    assert all(abs(x) < 1e3 for x in c.d)  # never log(1e-300)


# ------------------------------------------------------------------ across experiments


def _algoperf_score(times: dict[str, list[float]], r_max: float = 4.0) -> dict[str, float]:
    """AlgoPerf's scoring written out: r = t / the fastest, r > r_max a miss, rho on 100 points of
    [1, r_max], trapezoid area over (r_max - 1)."""
    workloads = len(next(iter(times.values())))
    best = [min(t[w] for t in times.values()) for w in range(workloads)]
    ratios = {o: [t[w] / best[w] if t[w] / best[w] <= r_max else math.inf for w in range(workloads)] for o, t in times.items()}
    taus = np.linspace(1, r_max, 100)
    return {o: float(np.trapezoid([sum(x <= tau for x in r) / workloads for tau in taus], taus) / (r_max - 1))
            for o, r in ratios.items()}


def test_performance_profile_score_equals_algoperfs_formula():
    from bench.analysis.leaderboard import profile_score

    assert profile_score([1.0, 2.0, math.inf]) == pytest.approx((3 + 2 + 0) / 9)
    rng = np.random.default_rng(4)
    for _ in range(20):
        times = {o: list(rng.uniform(100, 500, 5)) for o in ("a", "b", "c")}
        times["c"][2] = math.inf
        best = [min(t[w] for t in times.values()) for w in range(5)]
        ours = {o: profile_score([t[w] / best[w] for w in range(5)]) for o, t in times.items()}
        # theirs integrates a step function with 100 trapezoids: equal within one grid step per workload
        for o, value in _algoperf_score(times).items():
            assert ours[o] == pytest.approx(value, abs=1 / 99 / 3 + 1e-9)


def test_compare_writes_strict_json_with_every_field_and_a_leaderboard(cli, tmp_path):
    runs = two_experiments(tmp_path / "r")
    r = cli("compare", *runs, "--json", tmp_path / "v.json")
    assert r.code == 0, r.err
    text = (tmp_path / "v.json").read_text()
    v = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    cfg = v["config"]
    assert cfg["seeds"] == list(range(6)) and cfg["primary"] == "swd.final" and cfg["alpha"] == 0.05
    assert cfg["metrics"]["swd.final"]["direction"] == "min" and cfg["r_max"] == 4.0
    assert cfg["correction"].startswith("holm") and cfg["test"].startswith("exact two-sided sign test")
    assert cfg["target_rule"].startswith("sgd's median SWD at iteration 30 (half the budget)")
    first = v["comparisons"][0]
    assert {"a", "b", "metric", "seeds", "d", "estimate", "ci", "p_raw", "p_holm", "p_improvement", "label"} <= set(first)
    assert set(v["time_to_target"]) == {"faces", "digits"}
    board = v["leaderboard"]
    assert board["experiments"] == ["digits", "faces"] and board["optimizers"] == ["sgd", "adam"]
    assert board["profile"]["adam"]["score"] >= board["profile"]["sgd"]["score"]
    # IQM: scipy's trim_mean of every normalised final score, pooled over experiments
    from scipy.stats import trim_mean

    for o in ("sgd", "adam"):
        pooled = [x for e in board["experiments"] for x in board["normalised"][e][o].values()]
        assert board["iqm"][o]["value"] == pytest.approx(trim_mean(pooled, 0.25), abs=1e-12)
    (p,) = board["p_improvement"]
    assert (p["a"], p["b"], p["value"]) == ("sgd", "adam", 0.0)  # adam better in every seed of both
    assert "leaderboard over digits, faces:" in r.out and "adam beats sgd on SWD in 6 of 6 seeds" in r.out


def test_compare_refuses_unusable_input(cli, tmp_path):
    cut = make_run(tmp_path / "a", steps=40, cut_at=10, state="running", quality=True)
    r = cli("compare", cut)
    assert r.code == 2 and "the run is interrupted" in r.err
    a = make_run(tmp_path / "b", steps=40, seeds=(0, 1), quality=True, run_id="x")
    b = make_run(tmp_path / "c", steps=60, seeds=(0, 1), quality=True, run_id="y")
    r = cli("compare", a, b)
    assert r.code == 2 and "different step counts" in r.err
    c = make_run(tmp_path / "d", steps=40, seeds=(5,), quality=True, run_id="z")
    r = cli("compare", a, c)
    assert r.code == 2 and "share no seed" in r.err
    r = cli("compare", a, "--primary", "fid")
    assert r.code == 2 and "primary metric 'fid' was not scored" in r.err
    r = cli("compare", a, "--alpha", "2")
    assert r.code == 2 and "expected a number in (0, 0.5]" in r.err


# ------------------------------------------------------------------ real runs, the report and the leaderboard


def test_a_real_run_tells_an_optimizer_that_cannot_learn_from_adam(cli, golden, tmp_path):
    """The golden ``verdict`` run: the smoke GAN under adam and under adam with a learning rate of 1e-7
    (labelled ``frozen``) on six paired seeds. Nothing here is built: the values are trained."""
    r = cli("compare", golden["verdict"], "--json", tmp_path / "v.json")
    assert r.code == 0, r.err
    v = json.loads((tmp_path / "v.json").read_text())
    (c,) = [c for c in v["comparisons"] if c["metric"] == "rfd.final"]
    assert (c["a"], c["b"], c["label"]) == ("adam", "frozen", "better") and c["wins"] == 6 and c["confirmatory"]
    assert c["p_holm"] == pytest.approx(sps.binomtest(6, 6, 0.5).pvalue) and c["ci"][1] < 0
    # the same numbers from the CSV with pandas and scipy: final RFD = mean of the last three trained evaluations;
    # frozen does not learn (its final RFD is above its untrained generator's), so it counts as the worst run
    import pandas as pd

    finals, start = {}, {}
    for opt in ("adam", "frozen"):
        for s in range(6):
            q = pd.read_csv(golden["verdict"] / f"runs/{opt}-seed{s}/quality.csv")
            q = q[q.metric == "rfd"].sort_values("step")
            finals[(opt, s)] = q[q.step > 0].value.to_numpy()[-3:].mean()
            start[(opt, s)] = q[q.step == 0].value.iloc[0]
    assert all(finals[("adam", s)] < start[("adam", s)] for s in range(6))  # the primary sees adam learn ...
    assert all(finals[("frozen", s)] >= start[("frozen", s)] for s in range(6))  # ... and frozen not
    assert all("did not learn" in " ".join(v["verdicts"][0]["health"]["frozen"][str(s)]) for s in range(6))
    assert all(d < 0 for d in c["d"]) and c["estimate"] == pytest.approx(float(np.median(c["d"])), rel=1e-12)
    assert "adam beats frozen on RFD in 6 of 6 seeds" in r.out


def test_the_report_states_the_verdict_and_writes_it_as_json(golden, tmp_path):
    from bench.analysis.verdict import config_of
    from bench.report.run import build_report

    page = build_report(golden["verdict"], tmp_path / "reports")
    html = page.read_text()
    expected = verdict(load_run(golden["verdict"]), config_of(json.loads((golden["verdict"] / "manifest.json").read_text())))
    top = html.index('<h2 id="verdict">')
    assert top < html.index("<h2", top + 1) and html.count('<h2 id="verdict">') == 1  # the first section
    import html as H
    import re

    shown = re.search(r'<ul class="verdict">(.*?)</ul>', html, re.S).group(1)
    assert [H.unescape(x) for x in re.findall(r"<li>(.*?)</li>", shown, re.S)] == expected.sentences
    assert any(s.startswith("adam beats frozen on RFD in 6 of 6 seeds") for s in expected.sentences)
    saved = json.loads((page.parent / "verdict.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert saved["comparisons"] == json.loads(json.dumps(expected.to_json()))["comparisons"]
    assert saved["time_to_target"]["metric"] == "rfd.final" and saved["validation"]["passed"]
    assert 'id="validation-table"' in html and 'data-metric="rfd" data-passed="True"' in html


@pytest.mark.integration
def test_the_index_links_a_leaderboard_once_two_experiments_have_verdicts(cli, tmp_path):
    runs = two_experiments(tmp_path / "r")
    assert cli("report", runs[0], "--reports", tmp_path / "reports").code == 0
    assert not (tmp_path / "reports/leaderboard.html").exists()  # one experiment: nothing to rank across
    assert cli("report", runs[1], "--reports", tmp_path / "reports").code == 0
    index = (tmp_path / "reports/index.html").read_text()
    assert 'href="leaderboard.html"' in index
    board = json.loads((tmp_path / "reports/leaderboard.json").read_text())
    assert cli("compare", *reversed(runs), "--json", tmp_path / "v.json").code == 0
    assert board == json.loads((tmp_path / "v.json").read_text())["leaderboard"]  # the same, in either order
    page = (tmp_path / "reports/leaderboard.html").read_text()
    assert "faces" in page and "digits" in page and 'src="data:image/png;base64,' in page


def test_normalised_scores_count_uniform_noise_as_zero_and_the_ideal_as_one(golden):
    import pandas as pd

    from bench.analysis.leaderboard import normalised

    run = golden["verdict"]
    noise = json.loads((run / "manifest.json").read_text())["eval"]["noise"]["rfd"]
    v = json.loads(json.dumps(verdict(load_run(run)).to_json()))
    assert v["noise"] == noise
    n = normalised(v)
    for s in range(6):
        q = pd.read_csv(run / f"runs/adam-seed{s}/quality.csv")
        final = q[(q.metric == "rfd") & (q.step > 0)].sort_values("step").value.to_numpy()[-3:].mean()
        assert n["adam"][s] == pytest.approx((noise - final) / noise, rel=1e-12) and 0 < n["adam"][s] < 1
        assert n["frozen"][s] <= 0  # failed (covers nothing): at most the noise's score


@pytest.mark.integration
def test_the_leaderboard_takes_finished_runs_with_seeds_enough_and_lists_every_optimizer(cli, tmp_path):
    res, reports = tmp_path / "res", tmp_path / "reports"
    make_run(res, optimizers=("sgd", "adam"), seeds=tuple(range(7)), steps=40, experiment="faces",
             run_id="20260101-000001", quality=falling_swd("adam"))
    make_run(res, optimizers=("sgd", "adam", "rmsprop"), seeds=tuple(range(7)), steps=40, experiment="digits",
             run_id="20260101-000002", quality=falling_swd("adam"))
    # newer, but not usable: too few seeds for a verdict, and cut short
    make_run(res, optimizers=("sgd", "adam"), seeds=(0, 1), steps=40, experiment="faces", run_id="20260102-000001",
             quality=falling_swd("sgd"))
    make_run(res, optimizers=("sgd", "adam"), seeds=tuple(range(7)), steps=40, experiment="digits",
             run_id="20260102-000002", quality=falling_swd("sgd"), cut_at=20, state="running")
    assert cli("report", res, "--out", reports).code == 0
    board = json.loads((reports / "leaderboard.json").read_text())
    assert board["experiments"] == ["digits", "faces"]
    assert board["optimizers"] == ["sgd", "adam", "rmsprop"]  # rmsprop ran on digits only: listed, not dropped
    assert board["missing"]["rmsprop"] == ["faces"] and board["times"]["faces"]["rmsprop"] is None
    assert board["iqm"]["rmsprop"]["experiments"] == 1
    assert any("rmsprop did not run on faces" in n for n in board["notes"])
    # the newer faces run (2 seeds) and digits run (cut short) are left out: adam, better in both used runs, leads
    (p,) = [p for p in board["p_improvement"] if (p["a"], p["b"]) == ("sgd", "adam")]
    assert p["value"] == 0.0 and p["seeds"] == 14 and p["ci"][1] < 0.25
    page = (reports / "leaderboard.html").read_text()
    assert "did not run" in page
