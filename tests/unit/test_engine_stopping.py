"""When a run stops: tol = 0 runs to max_steps even through zero-gradient steps."""

import numpy as np

import rvscgd


def test_zero_gradient_step_is_not_convergence_with_tol_zero():
    w_star = rvscgd.make_teacher(8, 3, np.random.default_rng(0))
    runs = rvscgd.make_runs("l1", 0.0, 0.1, 1.0)  # lam = 0: u = w, so w = w* never moves
    for precision in ("float64", "float32"):
        stay = rvscgd.train(w_star, w_star, 2, runs, "fresh", max_steps=7, tol=0.0, batch_size=4, precision=precision)
        assert stay.status_names().tolist() == ["max_steps"]
        assert stay.steps_run.tolist() == [7]
        np.testing.assert_allclose(stay.w_final[0], w_star, atol=1e-15)
        stop = rvscgd.train(w_star, w_star, 2, runs, "fresh", max_steps=7, tol=1e-12, batch_size=4, precision=precision)
        assert stop.status_names().tolist() == ["converged"]
        assert stop.steps_run.tolist() == [1]
