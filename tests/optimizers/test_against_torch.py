"""Each rule against torch.optim, in float64, on the shared 20-step problem, to 1e-10.

Keras and torch write several rules differently (see the table in
``shenjing.optimizers``); each test maps the hyper-parameters so that the two
rules are the same function and says why. Where no mapping makes them equal
(Keras's epsilon placement with epsilon > 0), ``test_golden.py`` checks the
rule against a plain reference instead.
"""

import numpy as np
import pytest

from shenjing import optimizers

from .helpers import STEPS, initial_values, max_difference, run_shenjing, run_torch

torch = pytest.importorskip("torch")

TOL = 1e-10


def assert_same(ours, theirs):
    assert len(ours) == len(theirs) == STEPS
    assert max_difference(ours, theirs) < TOL
    # the problem moves the weights well beyond the tolerance, so the comparison means something
    start = [initial_values()]
    assert max_difference(ours[-1:], start) > 1e-3


def test_sgd_plain():
    # w -= lr * g in both.
    ours = run_shenjing(optimizers.SGD(learning_rate=0.02))
    theirs = run_torch(lambda p: torch.optim.SGD(p, lr=0.02))
    assert_same(ours, theirs)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    # Keras keeps m = mu*m - lr*g, torch b = mu*b + g (dampening 0); with a constant lr, m = -lr*b at
    # every step, so w += m equals w -= lr*b, and Nesterov's w += mu*m - lr*g equals w -= lr*(g + mu*b).
    ours = run_shenjing(optimizers.SGD(learning_rate=0.02, momentum=0.8, nesterov=nesterov))
    theirs = run_torch(lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.8, dampening=0.0, nesterov=nesterov))
    assert_same(ours, theirs)


def test_adagrad():
    # Keras: lr*g/sqrt(a + eps); torch: lr*g/(sqrt(a) + eps). With eps = 0 in both and torch's
    # accumulator started at Keras's 0.1 (and no lr_decay), both are lr*g/sqrt(a).
    ours = run_shenjing(optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.0))
    theirs = run_torch(lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0))
    assert_same(ours, theirs)


def test_adadelta():
    # The same rule (eps inside both roots, delta accumulated before the lr); only the defaults differ
    # (torch lr=1, eps=1e-6; Keras lr=0.001, eps=1e-7), so pass the same values to both.
    ours = run_shenjing(optimizers.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6))
    theirs = run_torch(lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6))
    assert_same(ours, theirs)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_rmsprop(centered, momentum):
    # Keras: lr*g/sqrt(v + eps), torch: lr*g/(sqrt(v) + eps): equal with eps = 0. With momentum Keras
    # keeps b = mu*b + lr*g/sqrt(v), torch b = mu*b + g/sqrt(v) then w -= lr*b: equal for a constant lr.
    ours = run_shenjing(optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=momentum, epsilon=0.0,
                                           centered=centered))
    theirs = run_torch(lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=0.0, momentum=momentum,
                                                     centered=centered))
    assert_same(ours, theirs)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam(amsgrad):
    # Keras: lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + eps); torch: lr/(1-b1^t) * m/(sqrt(v)/sqrt(1-b2^t) + eps).
    # They differ only in where eps enters, so with eps = 0 they are the same expression (AMSGrad: both
    # take the running maximum of the raw v).
    ours = run_shenjing(optimizers.Adam(learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=0.0, amsgrad=amsgrad))
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.95), eps=0.0, amsgrad=amsgrad))
    assert_same(ours, theirs)


def test_adamw():
    # Both decay decoupled, before the Adam step, by the factor (1 - lr*wd); the Adam steps agree at eps = 0.
    ours = run_shenjing(optimizers.AdamW(learning_rate=0.05, weight_decay=0.3, beta_1=0.8, beta_2=0.95,
                                         epsilon=0.0))
    theirs = run_torch(lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.3, betas=(0.8, 0.95), eps=0.0))
    assert_same(ours, theirs)


def test_adamax():
    # Keras: u = max(b2*u, |g|), step lr*m/((1-b1^t)(u + eps)); torch: u = max(b2*u, |g| + eps),
    # step lr/(1-b1^t) * m/u. With eps = 0 they coincide.
    ours = run_shenjing(optimizers.Adamax(learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=0.0))
    theirs = run_torch(lambda p: torch.optim.Adamax(p, lr=0.05, betas=(0.8, 0.95), eps=0.0))
    assert_same(ours, theirs)


def test_nadam():
    # torch's momentum cache is b1*(1 - 0.5*0.96^(t*psi)); with momentum_decay psi = 1 it is Keras's
    # b1*(1 - 0.5*0.96^t). Both add eps to sqrt(v/(1-b2^t)), so the rules agree even with eps > 0.
    ours = run_shenjing(optimizers.Nadam(learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-3))
    theirs = run_torch(lambda p: torch.optim.NAdam(p, lr=0.05, betas=(0.8, 0.95), eps=1e-3, momentum_decay=1.0))
    assert_same(ours, theirs)


def test_adam_default_epsilon_differs_from_torch():
    # The documented difference is real: with eps = 1e-3 (exaggerated) the trajectories part.
    ours = run_shenjing(optimizers.Adam(learning_rate=0.05, epsilon=1e-3))
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.05, eps=1e-3))
    assert max_difference(ours, theirs) > 1e-6
    assert np.isfinite(max_difference(ours, theirs))
