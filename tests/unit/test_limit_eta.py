"""predicted_limit(eta=...) predicts the limit a population run with that eta
reaches, also where several fixed points exist (l0, l1 at large lambda)."""

import numpy as np
import pytest

import rvscgd


@pytest.mark.parametrize("penalty", ["l0", "l1", "tl1"])
def test_eta_aware_prediction_matches_the_run(penalty):
    rng = np.random.default_rng(5)
    n, k, beta = 10, 4, 0.05
    c = rvscgd.coarse_constant(k)
    several = 0
    for _ in range(6):
        w_star = rvscgd.make_teacher(n, 3, rng)
        w0 = rng.standard_normal(n)
        w0 /= np.linalg.norm(w0)
        for lam in (0.05 * c, 0.2 * c, 1.0 * c):
            search_all = rvscgd.predicted_limit(w_star, k, lam, beta, penalty, starts=16, seed=1)
            several += len(search_all) > 1
            for eta in (1.0, 4.0):
                search = rvscgd.predicted_limit(w_star, k, lam, beta, penalty, starts=w0[None], eta=eta)
                run = rvscgd.train(w_star, w0, k, rvscgd.make_runs(penalty, lam, beta, eta), max_steps=20000, tol=1e-14)
                assert run.status_names()[0] == "converged"
                own = search.start_limit[0]
                assert own >= 0
                assert np.linalg.norm(run.w_final[0] - search.limits[own].w_bar) < 1e-8
    if penalty == "l0":
        assert several > 0  # the cases include ones with several fixed points


def test_fixed_points_do_not_depend_on_eta():
    rng = np.random.default_rng(2)
    w_star = rvscgd.make_teacher(8, 3, rng)
    k, beta, lam = 4, 0.05, 0.02 * rvscgd.coarse_constant(4)
    found = {}
    for eta in (None, 1.0, 3.0):
        search = rvscgd.predicted_limit(w_star, k, lam, beta, "tl1", starts=24, seed=3, eta=eta)
        found[eta] = search.limits
    # Every limit found with one eta is a fixed point for the others: the
    # residual of the eta-free equation is at rounding level for all.
    for limits in found.values():
        for lim in limits:
            assert lim.residual <= 1e-12
    assert rvscgd.predicted_limit(w_star, k, lam, beta, "tl1", starts=2, eta=1.0).n_starts == 2
    with pytest.raises(ValueError, match="eta"):
        rvscgd.predicted_limit(w_star, k, lam, beta, "tl1", eta=0.0)
