"""The verdict: every statistic against an independent computation, built effects on fixtures, a real run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fakeruns import falling_swd, make_run, two_experiments
from scipy import stats as sps

from bench.analysis import stats as S
from bench.analysis.verdict import seeds_needed, verdict
from bench.store.load import load_run

# ------------------------------------------------------------------ the statistics


@pytest.mark.parametrize("n", [2, 3, 5, 8, 11])
def test_sign_flip_p_equals_scipy_permutation_test(n):
    rng = np.random.default_rng(n)
    for d in (rng.normal(0.3, 1, n), rng.normal(0, 1, n), np.round(rng.normal(0.5, 1, n), 1), np.r_[np.zeros(n - 1), 1.0]):
        ref = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                   alternative="two-sided").pvalue
        assert S.sign_flip_p(d) == pytest.approx(min(1.0, ref), abs=1e-12), d
    assert S.sign_flip_p(np.zeros(n)) == 1.0 and S.sign_flip_p([0.7]) == 1.0  # one seed: both patterns as extreme
    assert S.smallest_p(n) == pytest.approx(2 / 2 ** n)


def test_sign_flip_p_beyond_sixteen_seeds_is_a_monte_carlo_estimate():
    d = np.random.default_rng(0).normal(0.4, 1, 20)
    exact = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=200_000,
                                 alternative="two-sided", random_state=1).pvalue
    assert S.sign_flip_p(d) == pytest.approx(exact, abs=0.01)


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


def test_bootstrap_interval_equals_a_direct_bootstrap_over_seeds():
    rng = np.random.default_rng(5)
    d = rng.normal(0.2, 1, 7)
    low, high = S.bootstrap(d, lambda x: x.mean(axis=1), reps=4000, seed=9)
    draws = np.random.default_rng(9)
    means = []
    for _ in range(4000):  # one resample of the seeds at a time
        means.append(np.mean([d[draws.integers(0, 7)] for _ in range(7)]))
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)
    # and scipy's own percentile bootstrap agrees within its Monte Carlo error
    ref = sps.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", random_state=2).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.05) and high == pytest.approx(ref.high, abs=0.05)


def test_seeds_needed_for_a_decisive_verdict():
    assert seeds_needed(1, 0.05) == 6 and seeds_needed(3, 0.05) == 7 and seeds_needed(10, 0.05) == 9
    for pairs, n in ((3, 7), (1, 6)):
        assert pairs * S.smallest_p(n) < 0.05 <= pairs * S.smallest_p(n - 1)


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
    assert any(s.startswith("adam beats sgd on SWD in 6 of 6 seeds: -30% [-30%, -30%], p = 0.0312") for s in v.sentences)


def test_the_same_with_three_seeds_is_underpowered_and_says_how_many_are_needed(tmp_path):
    v = _verdict(tmp_path, range(3), quality=falling_swd(better="adam"))
    (c,) = v.primary_comparisons()
    assert c.label == "underpowered" and c.p_holm == pytest.approx(0.25)
    assert "underpowered: 3 seeds cannot reach p < 0.05 with 1 pair (Holm); run --seeds 0,1,2,3,4,5" in "\n".join(v.sentences)


def test_identical_optimizers_are_equivalent_with_no_division_by_zero(tmp_path):
    v = _verdict(tmp_path, range(4), quality=falling_swd())
    for c in v.comparisons:
        if c.metric.partition(".")[0] in ("swd", "fd_pca", "kid_pca", "coverage", "diversity", "memorisation"):
            assert c.label == "equivalent" and c.d == [0.0] * 4 and c.p_raw == 1.0 and c.ci == [0.0, 0.0], c
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
    assert any(s.startswith("sgd beats adam on SWD in 7 of 7 seeds") for s in v.sentences)


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
    assert cfg["bootstrap"] == {"reps": 10000, "seed": 0} and cfg["correction"].startswith("holm")
    assert cfg["target_rule"].startswith("median over seeds of sgd's best")
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
    (c,) = [c for c in v["comparisons"] if c["metric"] == "swd.final"]
    assert (c["a"], c["b"], c["label"]) == ("adam", "frozen", "better") and c["wins"] == 6
    assert c["p_holm"] == pytest.approx(2 / 64) and c["ci"][1] < 0
    # the same numbers from the CSV with pandas and scipy: final SWD = mean of the trained evaluations
    import pandas as pd

    finals = {}
    for opt in ("adam", "frozen"):
        for s in range(6):
            q = pd.read_csv(golden["verdict"] / f"runs/{opt}-seed{s}/quality.csv")
            q = q[(q.metric == "swd") & (q.step > 0)].sort_values("step")
            finals[(opt, s)] = q.value.to_numpy()[-3:].mean()
    d = np.array([math.log(finals[("adam", s)]) - math.log(finals[("frozen", s)]) for s in range(6)])
    assert c["d"] == pytest.approx(list(d), rel=1e-12) and c["estimate"] == pytest.approx(d.mean(), rel=1e-12)
    assert "adam beats frozen on SWD in 6 of 6 seeds" in r.out


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
    assert any(s.startswith("adam beats frozen on SWD in 6 of 6 seeds") for s in expected.sentences)
    saved = json.loads((page.parent / "verdict.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert saved["comparisons"] == json.loads(json.dumps(expected.to_json()))["comparisons"]
    assert saved["time_to_target"]["metric"] == "swd.final"


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
    noise = json.loads((run / "manifest.json").read_text())["eval"]["noise"]["swd"]
    v = json.loads(json.dumps(verdict(load_run(run)).to_json()))
    assert v["noise"] == noise
    n = normalised(v)
    for s in range(6):
        q = pd.read_csv(run / f"runs/adam-seed{s}/quality.csv")
        final = q[(q.metric == "swd") & (q.step > 0)].sort_values("step").value.to_numpy()[-3:].mean()
        assert n["adam"][s] == pytest.approx((noise - final) / noise, rel=1e-12) and 0 < n["adam"][s] < 1
        assert n["frozen"][s] <= 0  # failed (covers nothing): at most the noise's score
