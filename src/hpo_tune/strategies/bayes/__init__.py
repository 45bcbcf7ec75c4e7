"""Bayesian optimisation: Gaussian-process BO with expected improvement, and the seed-001 "Gamma" BO.

Seed 001 (Y. H. Kim, "Research on Hyperparameter Optimization for Improving AutoML Performance",
thesis; a journal version is Kim & Chung, Electronics 8(11) 1267, 2019) tunes a CNN's learning rate
by BO and compares the usual Gaussian predictive with one built from a conjugate Gamma prior on
the precision. Most of its formulas were lost in extraction; what follows is reconstructed from its
prose and the textbook results it cites (Bishop 2.3.6 [25, 41], Lizotte 2008 [36], Martin Krasser's
blog, whose scikit-learn GP code it follows).

Both strategies: trial numbers below ``n_initial`` are random draws (the paper starts from two
points); later ones maximise expected improvement (EI) over the space, which may mix floats, log
floats, ints (linear or log, with a step) and choices. Losses are ``direction.loss(value)`` of the
COMPLETE trials (always minimised). A FAILED or PRUNED trial counts
as the worst loss seen so far (``failed: worst``, once two trials are complete) or is left out
(``failed: ignore``). Either way their numbers stay taken.

**Surrogate (both).** Each configuration maps to a point u of a unit cube (``encoding``): a
numeric dimension to one column in [0, 1] (log dimensions in log space), a choice of numbers to one
column holding its rank, any other choice of m values to a one-hot block of m columns. The GP's
targets y~ are the losses standardised, y~ = (y - mean) / sd (what scikit-learn's ``normalize_y``
does; done here so the predictive can be computed from the fitted kernel), or under
``output_warping: rank`` the normal scores of their ranks, y~_i = Phi^-1((rank_i - 1/2) / n), ties
at their mean rank (a Gaussian copula, as HEBO and Salinas et al. 2020 warp outputs). Ranks keep
the order and drop the distances: one diverged training or a region of dead architectures (80
points below the rest on NAS-Bench-201) no longer squeezes every good loss into one standardised
value. ``auto``, the default, ranks on a discrete space (every dimension a choice or an int) and
keeps standardised losses where a dimension is continuous: there, homing in on an optimum needs the
distances ranks drop (measured: Branin's and Hartmann-6's regrets grew tenfold), and seed 001's and
002's learning rates keep the paper's model. The kernel
k = c * Matern_5/2(u, u'; l_1..l_D) + w * delta(u, u'), one length scale per dimension of the space
(a one-hot block's columns share theirs), has its amplitude c, length scales l and noise w fitted
by maximum marginal likelihood (scikit-learn's formula, written out in ``NegativeLikelihood`` so the
distances are computed once per fit; L-BFGS-B from the initial values and one random restart). With
K = k(U, U) over the n observations (noise included) and k* = c * Matern(u, U) (noise excluded: EI
is about the function, not about one noisy retraining) the latent predictive is

    f(u) | D ~ N(mu(u), s2(u)),   mu = k*' K^-1 y~,   s2 = c - k*' K^-1 k*.

**gp_bo: EI, paper eq. 10** (Mockus/Jones eq. 9 with Lizotte's trade-off xi >= 0; written for
minimisation, y+ = the best observed loss):

    I = y+ - mu(u) - xi,   Z = I / s,   EI(u) = I Phi(Z) + s phi(Z)  if s > 0,   0  if s = 0.

xi is in the objective's units (divided by sd internally; under rank warping the same xi / sd is
used on the rank scores, which also have unit spread). Default 0.01: the paper cites research
[35] finding one value of xi best (the number was lost in extraction); 0.01 is Lizotte's
recommendation and what Krasser's blog uses. y+ is the best observed loss, as eq. 10 is written
(Krasser's code uses the best posterior mean at the sampled points instead).

**gamma_bo: the Gamma prior on the precision, paper eqs. 13-15.** Sec. 3.3 says the work changes
the distribution the acquisition is evaluated under, not the surrogate. Eq. 13 is the conjugate
Gaussian prior on a mean with known variance; the paper drops it ("dependence on the SM") for eq.
14: the mean is known and the precision lambda = 1/sigma^2 is unknown, with likelihood
prod_n N(x_n | mu, 1/lambda) ~ lambda^(N/2) exp(-lambda/2 sum_n (x_n - mu)^2), a conjugate
Gamma(a0, b0) prior and (eq. 15) the posterior Gamma(a0 + N/2, b0 + 1/2 sum_n (x_n - mu)^2). It then
"estimates the variance with it, and the mean again with the estimated variance". Integrating the
precision out of a Gaussian gives a Student-t with 2 a_N degrees of freedom (Bishop 2.159).

Reconstruction: the known mean is the surrogate's, and the Gamma precision tau scales the GP,
y~ | tau ~ N(0, K / tau) and f | tau, D ~ N(mu, s2 / tau), tau ~ Gamma(a0, b0) (shape, rate). The
whitened observations L^-1 y~ (K = L L') are n independent N(0, 1/tau) under this model: they are
the (x_n - mu) of eq. 14 in the GP's own metric. So

    a_n = a0 + n / 2,   b_n = b0 + 1/2 y~' K^-1 y~,
    f(u) | D ~ t_{2 a_n}(mu(u), scale^2 = (b_n / a_n) s2(u)).

This is the Normal-Gamma model with a GP covariance (a Student-t process with an inverse-Gamma
amplitude): with a constant kernel 1/kappa0 and unit noise it is exactly the textbook update
NG(mu0 = 0, kappa0, a0, b0) -> kappa_n = kappa0 + n, mu_n = n ybar / kappa_n,
b_n = b0 + 1/2 sum (y - ybar)^2 + kappa0 n ybar^2 / (2 kappa_n), mean ~ t_{2 a_n}(mu_n, b_n / (a_n kappa_n))
(tested). The kernel amplitude relative to the noise plays kappa0's part, so there is no kappa0
option. Building the precision from the raw residuals y - mu(x_n) instead would measure only the
noise (the GP nearly interpolates) and lose the GP's spatial uncertainty; whitening keeps its shape
and puts the Gamma on its overall scale.

EI under the Student-t (closed form, nu = 2 a_n > 1, with I and Z as above and s the t scale):

    EI(u) = I T_nu(Z) + s (nu + Z^2) / (nu - 1) t_nu(Z),

from E[max(I - s T, 0)] = s int_{-inf}^{Z} (Z - t) t_nu(t) dt and
int_{-inf}^{Z} t t_nu(t) dt = -(nu + Z^2) / (nu - 1) t_nu(Z). Heavier tails than the Gaussian with
the same scale give more EI where s is large: more exploration, the paper's point.

``a0`` and ``b0``: tau has prior mean a0 / b0 and weighs like 2 a0 pseudo-observations; b0 / a0 is the
prior guess of the variance multiplier on the GP. As the prior grows confident (a0 = b0 -> inf)
b_n / a_n -> 1 and nu -> inf, so the predictive tends to gp_bo's N(mu, s2) and the proposals to gp_bo's
(tested). Defaults a0 = b0 = 1: centred on the GP's own scale and weak (nu = 2 + n), so the tails are
heavy early and fade as observations accumulate. With c and w fitted by maximum likelihood
y~' K^-1 y~ = n unless a bound on them binds (rescaling both is free), so with a0 = b0 the Gamma
mostly adds tails; b0 != a0 also rescales.

**Batches: constant liar.** Pending points (RUNNING trials and the numbers proposed earlier in the
same request) join the data with the best observed loss as their value (kernel hyperparameters as
fitted on the real observations, y+ still the real best). A lie collapses the uncertainty at its
point, so the next proposal goes elsewhere. A BO number waits (is not proposed) while fewer than two
trials are complete and some are pending; with nothing pending it falls back to a random draw.

**Mixed spaces.** A choice of numbers (``batch_size: [16, 32, 64]``) is ordinal by default
(``numeric_choices: ordinal``): one column holding its rank, level j of m at j / (m - 1), so the kernel
carries what one level taught it to its neighbours; real HPO spaces are mostly such lattices (on the
HPOBench tables, where every dimension is a list of values, one-hot encoding left both BOs behind
Optuna's samplers). ``numeric_choices: categorical`` encodes it as any other choice. A choice of
anything else is a one-hot block. Under ``choice_kernel: hamming`` its columns share one length scale
(``GroupedMatern``: ARD over the space's dimensions, not the encoding's columns), so any two levels are
sqrt(2) / l apart, a Hamming kernel, and a choice costs the kernel fit one hyperparameter instead of
one per level; ``per_level`` gives each column its own. ``auto`` takes ``hamming`` on a discrete space
(on NAS-Bench-201 it is what lets the BOs keep up with the TPEs at 50 trials) and ``per_level`` where a
dimension is continuous (on the noisy mixed Hartmann-6, ``gamma_bo`` under ``hamming`` stayed on the
wrong amplitude in most seeds).
The cube between runnable configurations is a relaxation; the acquisition is only evaluated at
projected points, ints and ordinal choices snapped to their levels and each one-hot block to the
one-hot of its largest column, so EI scores configurations that can actually run (Garrido-Merchan &
Hernandez-Lobato 2020, "Dealing with categorical and integer-valued variables in Bayesian
optimization with Gaussian processes"). Candidates: every configuration when all dimensions are
discrete and there are at most 32,768 of them, as long as scoring them stays within a cost
(configurations x the surrogate's points squared: NAS-Bench-201's 15,625 are scored whole up to 92
points, HPOBench's 30,000 up to 66), past which a seeded sample of the configurations is scored and
climbed from as below; else a dense grid (one numeric column) or a scrambled Sobol set over
the relaxed cube, projected, and from the best three a local search: L-BFGS-B over the continuous
columns with the discrete ones held, then greedy moves to the best discrete neighbour (an int or
ordinal choice one level up or down, a categorical choice at another level) while EI improves. On
spaces of floats and log floats alone this is the plain grid or Sobol search with L-BFGS-B from the
best few.

**Conditional spaces.** An inactive dimension's columns are imputed with a fixed value outside the cube (-1, as
SMAC's GP does), in the observations and in every projected candidate, and a proposal leaves it out
(``encoding``). Random draws are the space's own, which leave it out too.

**No repeats.** A proposal is the configuration of highest EI found that no trial of the history
(whatever its state: a failed configuration is not tried again) and no earlier proposal of the same
request has: a repeat would spend a training on a point the surrogate already knows (with a
continuous dimension an exact repeat is practically impossible, but it is still skipped). Random
draws are redrawn the same way, and so is the proposal when every point the search found is taken
(a large discrete space nearly used up). When every dimension is discrete and every configuration
has been taken, the study is finished (``Decision(finished=True)``): nothing new is left to learn.

Determinism: every random choice of trial k (GP restarts, subsets, the candidates, redraws) comes
from ``self.rng(k)``.
"""

from hpo_tune.strategies.bayes.strategy import GammaBO, GaussianProcessBO
from hpo_tune.strategies.bayes.surrogate import (
    Predictive,
    Surrogate,
    expected_improvement,
    gaussian_predictive,
    student_t_predictive,
)

__all__ = ["GammaBO", "GaussianProcessBO", "Predictive", "Surrogate", "expected_improvement",
           "gaussian_predictive", "student_t_predictive"]
