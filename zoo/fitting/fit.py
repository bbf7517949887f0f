"""The plain function API: ``fit`` (LBFGS or LM, one problem), ``fit_batched`` (many spectra at once),
``profile_interval`` (MINOS-like), and the uncertainty computation shared with the Lightning fitter.

A *model* is a callable ``model(params) -> expected`` where ``params`` maps every parameter name to a
tensor (0-d for ``fit``, ``[B]`` for ``fit_batched``) in physical units and ``expected`` has the data's
shape. Design and measured trade-offs: ``docs/cores/fitting.md`` (our choices).

Uncertainties (section 5): covariance = inverse of the observed Hessian of the NLL with respect to the
*physical* free parameters (``error_method="hessian"``), or of the expected (Fisher) information
``J^T diag(1/mu) J`` (Poisson) / ``J^T diag(1/sigma^2) J`` (Gaussian) (``"fisher"``). The NLL has
errordef 0.5, so ``cov = H^{-1}`` with no factor 2. ``scale_covariance=True`` multiplies by the reduced
deviance / chi-square (lmfit's default ``scale_covar``); the default ``False`` trusts the likelihood.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Sequence

import torch

from zoo.fitting.losses import check_data, check_model_output, goodness, negative_log_likelihood
from zoo.fitting.parameters import Parameter, ParameterSet, as_parameter_set
from zoo.fitting.result import BatchFitResult, FitResult

__all__ = ["covariance_from_hessian", "fit", "fit_batched", "profile_interval", "result_at", "uncertainties"]

Model = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
METHODS = ("lbfgs", "levenberg_marquardt")
ERROR_METHODS = ("hessian", "fisher")


def _as_tensor(x, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name} must be numeric array-like, got {type(x).__name__} ({error})") from None


def _normalised_condition(matrix: torch.Tensor) -> float:
    """Condition number of ``D^-1/2 H D^-1/2`` (unit-free; ~1e12 or more flags inseparable parameters)."""
    d = matrix.diagonal().abs().clamp_min(1e-300).rsqrt()
    scaled = matrix * d[:, None] * d[None, :]
    eig = torch.linalg.eigvalsh(0.5 * (scaled + scaled.T))
    return float("inf") if eig[0] <= 0 else float(eig[-1] / eig[0])


def covariance_from_hessian(hessian: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(H^{-1}, positive_definite)``; a non-PD matrix gets a pseudo-inverse and ``False``."""
    hessian = 0.5 * (hessian + hessian.transpose(-1, -2))
    _, info = torch.linalg.cholesky_ex(hessian)
    positive = bool((info == 0).all())
    if positive:
        return torch.cholesky_inverse(torch.linalg.cholesky(hessian)), True
    return torch.linalg.pinv(hessian), False


def uncertainties(
    model: Model,
    data: torch.Tensor,
    parameters: ParameterSet,
    p_free: torch.Tensor,
    *,
    loss: str = "poisson",
    sigma: torch.Tensor | None = None,
    error_method: str = "hessian",
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(covariance, information matrix, positive_definite)`` at ``p_free`` in physical units."""
    if error_method not in ERROR_METHODS:
        raise ValueError(f"error_method must be one of {ERROR_METHODS}, got {error_method!r}")
    p_free = p_free.detach().clone()

    def expected(p: torch.Tensor) -> torch.Tensor:
        return model(parameters.as_dict(p))

    if error_method == "hessian":
        info = torch.autograd.functional.hessian(lambda p: negative_log_likelihood(expected(p), data, loss, sigma), p_free)
    else:
        jac = torch.autograd.functional.jacobian(lambda p: expected(p).reshape(-1), p_free)  # [n, P]
        with torch.no_grad():
            mu = expected(p_free).reshape(-1)
        weight = 1.0 / mu if loss == "poisson" else 1.0 / sigma.reshape(-1) ** 2
        info = jac.T @ (weight[:, None] * jac)
    cov, positive = covariance_from_hessian(info)
    return cov, info, positive


def _release_from_bounds(objective, parameters: ParameterSet, u: torch.Tensor) -> bool:
    """Move free values stuck at a bound back inside when the NLL decreases inwards; ``True`` if any moved.

    A softplus/sigmoid transform has ``dp/du -> 0`` at a bound, so an overshooting line search can leave a
    parameter there with a vanishing gradient in ``u`` although the physical gradient points inwards (our fix:
    restart it half-way between the bound and its start value).
    """
    with torch.no_grad():
        p = parameters.to_physical(u.detach())
    stuck = parameters.at_bound(p, relative=1e-6)
    if not bool(stuck.any()):
        return False
    with torch.enable_grad():
        (grad_u,) = torch.autograd.grad(objective(), u)
    jac = parameters.jacobian_diagonal(u.detach())
    grad_p = grad_u / torch.where(jac.abs() > 0, jac, torch.ones_like(jac))
    lower, upper = parameters.lower, parameters.upper
    near_lower = stuck & ((p - lower).abs() <= (p - upper).abs())
    inward = torch.where(near_lower, grad_p < 0, grad_p > 0) & stuck & (jac.abs() > 0)
    if not bool(inward.any()):
        return False
    start = parameters.start()
    with torch.no_grad():
        bound = torch.where(near_lower, lower, upper)
        moved = torch.where(inward, 0.5 * (bound + start), p)
        u.copy_(parameters.to_unconstrained(moved))
    return True


def result_at(
    model: Model,
    data: torch.Tensor,
    parameters: ParameterSet,
    p_hat: torch.Tensor,
    *,
    loss: str = "poisson",
    sigma: torch.Tensor | None = None,
    error_method: str = "hessian",
    scale_covariance: bool = False,
    compute_errors: bool = True,
    method: str = "lbfgs",
    stop_reason: str = "",
    iterations: int = 0,
    function_evaluations: int = 0,
    started: float | None = None,
) -> FitResult:
    """The ``FitResult`` at the optimum ``p_hat`` (physical free values): goodness of fit, covariance, flags.

    ``converged`` = finite NLL, positive-definite information matrix, a stop reason other than the
    iteration limit (``docs/cores/fitting.md``), and an estimated distance to the minimum
    ``EDM = g^T C g / 2 < 1e-3`` (Minuit's criterion; skipped when a parameter sits at a bound).
    """
    started = time.perf_counter() if started is None else started
    p_hat = p_hat.detach()
    n_free = len(parameters)
    with torch.no_grad():
        mu = model(parameters.as_dict(p_hat))
        nll = float(negative_log_likelihood(mu, data, loss, sigma))
        gof = float(goodness(mu, data, loss, sigma))
    dof = data.numel() - n_free
    edm = float("nan")
    if compute_errors:
        cov, info, positive = uncertainties(model, data, parameters, p_hat, loss=loss, sigma=sigma, error_method=error_method)
        condition = _normalised_condition(info)
        p = p_hat.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(negative_log_likelihood(model(parameters.as_dict(p)), data, loss, sigma), p)
        edm = float(0.5 * grad @ cov @ grad)  # estimated distance to the minimum (Minuit's EDM)
    else:
        cov, positive, condition = torch.full((n_free, n_free), float("nan"), dtype=torch.float64), True, float("nan")
    if scale_covariance and dof > 0:
        cov = cov * (gof / dof)
    at_bound = parameters.at_bound(p_hat)
    converged = math.isfinite(nll) and positive and stop_reason not in ("max_iter reached", "not converged")
    if compute_errors and not (edm < 1e-3) and not bool(at_bound.any()):
        converged, stop_reason = False, f"{stop_reason}; EDM {edm:.3g} >= 1e-3"
    stop_reason = f"{stop_reason}; EDM {edm:.2g}" if compute_errors else stop_reason
    values = {name: float(v) for name, v in parameters.as_dict(p_hat).items()}
    variances = cov.diagonal()
    errors = {name: (math.sqrt(float(variances[i])) if float(variances[i]) >= 0 else float("nan"))
              for i, name in enumerate(parameters.free_names)}
    errors.update({p.name: 0.0 for p in parameters.fixed})
    return FitResult(
        names=list(parameters.names), values=values, errors=errors, covariance=cov.detach().numpy(),
        free_names=list(parameters.free_names), units=dict(parameters.units),
        at_bound={name: bool(at_bound[i]) for i, name in enumerate(parameters.free_names)},
        loss_kind=loss, nll=nll, goodness=gof, dof=dof, converged=bool(converged), stop_reason=stop_reason,
        iterations=iterations, function_evaluations=function_evaluations, wall_time_s=time.perf_counter() - started,
        method=method, error_method=error_method, covariance_scaled=bool(scale_covariance), hessian_condition=condition,
        data=data.detach().numpy(), model=mu.detach().numpy(), sigma=None if sigma is None else sigma.detach().numpy(),
    )


def fit(
    model: Model,
    data,
    parameters: ParameterSet | Sequence[Parameter],
    *,
    loss: str = "poisson",
    sigma=None,
    method: str = "lbfgs",
    max_iter: int = 500,
    error_method: str = "hessian",
    scale_covariance: bool = False,
    profile: bool | Sequence[str] = False,
    profile_level: float = 1.0,
    tolerance_grad: float = 1e-10,
    tolerance_change: float = 1e-14,
    restarts: int = 5,
    compute_errors: bool = True,
) -> FitResult:
    """Fit ``model`` to ``data`` by maximum likelihood; returns a ``FitResult`` in physical units.

    Args:
        model: ``model(params: dict[str, 0-d tensor]) -> expected`` with the data's shape.
        data: counts (Poisson, default) or values with error bars ``sigma`` (Gaussian), any shape.
        parameters: ``Parameter``s (start values, bounds, fixed flags) or a ``ParameterSet``.
        loss: ``"poisson"`` (NLL of counts) or ``"gaussian"`` (``chi2 / 2`` with known ``sigma``).
        method: ``"lbfgs"`` (torch LBFGS, strong-Wolfe line search, float64) or ``"levenberg_marquardt"``.
        error_method: ``"hessian"`` (observed) or ``"fisher"`` (expected information).
        scale_covariance: multiply the covariance by deviance/dof (chi2/dof), lmfit parity.
        profile: ``True`` or a list of names: add profile-likelihood intervals at ``delta(2 NLL) = profile_level``.
        restarts: LBFGS restarts (fresh history) while the NLL still decreases, within ``max_iter`` in total.

    Example::

        result = fit(lambda p: p["a"] * torch.exp(-x / p["tau"]) + 1, counts,
                     [Parameter("a", 50.0, "counts", lower=0), Parameter("tau", 2.0, "s", lower=0)])
        print(result.report())
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    data = _as_tensor(data, "data")
    sigma = None if sigma is None else _as_tensor(sigma, "sigma")
    check_data(data, loss, sigma)
    parameters = as_parameter_set(parameters)
    n_free = len(parameters)
    if data.numel() < n_free:
        raise ValueError(f"{data.numel()} data points cannot determine {n_free} free parameters")
    if method == "levenberg_marquardt":
        batch = fit_batched(
            lambda p: model(p)[None], data[None], parameters, loss=loss,
            sigma=None if sigma is None else sigma[None], max_iter=max_iter, scale_covariance=scale_covariance,
        )
        p_hat = torch.as_tensor(batch.values[0])
        stop = "relative deviance change < tolerance" if batch.converged[0] else "not converged"
        iterations, evaluations = int(batch.iterations[0]), int(batch.iterations[0]) + 1
        started = time.perf_counter() - batch.wall_time_s
    else:
        started = time.perf_counter()
        with torch.no_grad():
            check_model_output(model(parameters.as_dict(parameters.start())), data, loss)
        u = parameters.to_unconstrained(parameters.start()).clone().requires_grad_(True)
        evaluations, iterations, stop = 0, 0, "max_iter reached"

        def objective() -> torch.Tensor:
            return negative_log_likelihood(model(parameters.as_dict(parameters.to_physical(u))), data, loss, sigma)

        previous = float(objective().detach())
        for _ in range(restarts + 1):  # a fresh LBFGS (new curvature history) after a stall of the line search
            budget = max_iter - iterations
            if budget <= 0:
                break
            optimizer = torch.optim.LBFGS(
                [u], lr=1.0, max_iter=budget, max_eval=int(budget * 1.25) + 1, history_size=50,
                tolerance_grad=tolerance_grad, tolerance_change=tolerance_change, line_search_fn="strong_wolfe",
            )

            def closure() -> torch.Tensor:
                nonlocal evaluations
                evaluations += 1
                optimizer.zero_grad()
                value = objective()
                value.backward()
                return value

            optimizer.step(closure)
            iterations += int(optimizer.state[optimizer._params[0]].get("n_iter", 0))
            current = float(objective().detach())
            grad_max = float(u.grad.abs().max()) if u.grad is not None else float("nan")
            if grad_max <= tolerance_grad:
                stop = "gradient below tolerance_grad"
                break
            if iterations >= max_iter:
                stop = "max_iter reached"
                break
            stop = "change below tolerance_change"
            if _release_from_bounds(objective, parameters, u):
                previous = float(objective().detach())
                continue
            if not previous - current > 1e-12 * max(1.0, abs(current)):
                break  # the restart made no progress: at the optimum to working precision
            previous = current
        p_hat = parameters.to_physical(u.detach())
    result = result_at(
        model, data, parameters, p_hat, loss=loss, sigma=sigma, error_method=error_method,
        scale_covariance=scale_covariance, compute_errors=compute_errors, method=method, stop_reason=stop,
        iterations=iterations, function_evaluations=evaluations, started=started,
    )
    if profile:
        names = parameters.free_names if profile is True else list(profile)
        for name in names:
            result.intervals[name] = profile_interval(
                model, data, parameters, result, name, level=profile_level, loss=loss, sigma=sigma
            )
        result.interval_level = profile_level
    return result


def profile_interval(
    model: Model,
    data,
    parameters: ParameterSet | Sequence[Parameter],
    result: FitResult,
    name: str,
    *,
    level: float = 1.0,
    loss: str = "poisson",
    sigma=None,
    max_steps: int = 30,
) -> tuple[float, float]:
    """Profile-likelihood interval of ``name``: where ``2 [NLL_prof(p) - NLL_min] = level``.

    ``level = 1`` gives 68.3 %, ``4`` gives 95.4 % (one parameter). The other free parameters are
    re-minimised (LBFGS, warm-started from the neighbouring solution) at each trial value; the crossing is
    found by Brent's method. If a bound is reached before the crossing, the interval ends at the bound
    (one-sided). Like MINOS; lmfit's ``conf_interval`` uses an F-test instead (close for large samples).
    """
    from scipy.optimize import brentq

    parameters = as_parameter_set(parameters)
    if name not in parameters.free_names:
        raise ValueError(f"profile_interval: {name!r} is not a free parameter; free: {parameters.free_names}")
    if level <= 0:
        raise ValueError(f"level must be > 0, got {level}")
    data = _as_tensor(data, "data")
    sigma = None if sigma is None else _as_tensor(sigma, "sigma")
    spec = parameters[name]
    best, error = result.values[name], result.errors[name]
    step0 = error if math.isfinite(error) and error > 0 else max(1e-3 * abs(best), 1e-6)
    warm = dict(result.values)

    def excess(value: float) -> float:
        nonlocal warm
        if len(parameters) == 1:
            p = torch.tensor([value], dtype=torch.float64)
            with torch.no_grad():
                nll = float(negative_log_likelihood(model(parameters.as_dict(p)), data, loss, sigma))
        else:
            fixed = parameters.with_values(warm).with_fixed(name, value)
            inner = fit(model, data, fixed, loss=loss, sigma=sigma, compute_errors=False)
            warm = dict(inner.values)
            nll = inner.nll
        return 2.0 * (nll - result.nll) - level

    ends = []
    for direction, bound in ((-1.0, spec.lower), (+1.0, spec.upper)):
        warm = dict(result.values)
        inside, step, end = best, step0, None
        for _ in range(max_steps):
            trial = best + direction * step
            if bound is not None and (trial - bound) * direction >= 0:
                trial = bound - direction * 1e-9 * max(1.0, abs(bound))
                if excess(trial) < 0:
                    end = float(bound)  # one-sided: the likelihood never rises by `level` before the bound
                    break
            if excess(trial) > 0:
                end = float(brentq(excess, min(inside, trial), max(inside, trial), xtol=1e-10 * max(1.0, abs(best)) + 1e-12 * step0))
                break
            inside, step = trial, step * 2.0
        ends.append(float("nan") if end is None else end)
    return ends[0], ends[1]


def fit_batched(
    model: Model,
    data,
    parameters: ParameterSet | Sequence[Parameter],
    *,
    loss: str = "poisson",
    sigma=None,
    start=None,
    max_iter: int = 100,
    tolerance: float = 1e-10,
    scale_covariance: bool = False,
    initial_damping: float = 1e-3,
    drop_converged: bool = False,
) -> BatchFitResult:
    """Fit ``B`` independent problems at once by damped Fisher scoring (Levenberg-Marquardt).

    ``model(params)`` receives ``[B]`` tensors and returns ``[B, ...]`` (the data's shape); problem ``b``'s
    prediction must depend on its own parameters only. Per problem, with ``J = d mu / d u`` (``P`` forward-mode
    JVPs of the batched model, ``u`` the unconstrained parameters) and weights ``w = 1/mu`` (Poisson) or
    ``1/sigma^2`` (Gaussian) (``docs/cores/fitting.md``, our design):

        g = J^T [w (y - mu)],   F = J^T diag(w) J,   step = (F + lambda diag F)^{-1} g

    A problem's step is accepted only if its NLL does not rise (then ``lambda /= 10``, else ``lambda *= 10``);
    each problem stops on its own when the relative NLL change falls below ``tolerance``. ``converged`` also
    requires a positive-definite Fisher matrix and an estimated distance to minimum ``g^T F^-1 g / 2 < 1e-4``.
    Errors: inverse Fisher information in physical units at the optimum.

    Runs on the device of ``data`` (e.g. CUDA); the model must build its tensors there too.

    ``drop_converged=True`` evaluates, at each iteration, only the problems still iterating (each problem's
    arithmetic is unchanged; the batch shrinks as problems stop, instead of every problem being recomputed until
    the slowest converges). It needs a model whose output batch follows the batch of its parameters, i.e. one that
    broadcasts per-problem parameters against shared grids; a model that holds per-problem arrays of size ``B``
    cannot be called on a subset, and is refused with a ``ValueError`` on its first subset call.

    Args:
        data: ``[B, ...]`` counts (or values with ``sigma`` of the same shape).
        start: optional ``[B, n_free]`` physical start values (default: every problem from the parameters' values).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    data = _as_tensor(data, "data")
    sigma = None if sigma is None else _as_tensor(sigma, "sigma")
    if data.ndim < 2:
        raise ValueError(f"fit_batched needs data of shape [B, ...] with a batch axis, got shape {tuple(data.shape)}")
    check_data(data, loss, sigma)
    parameters = as_parameter_set(parameters)
    batch, n_free = data.shape[0], len(parameters)
    n_points = data[0].numel()
    if n_points < n_free:
        raise ValueError(f"{n_points} data points per problem cannot determine {n_free} free parameters")
    started = time.perf_counter()
    device = data.device
    sigma = None if sigma is None else sigma.to(device)
    if start is None:
        p0 = parameters.start().to(device).expand(batch, n_free).clone()
    else:
        p0 = _as_tensor(start, "start").to(device)
        if p0.shape != (batch, n_free):
            raise ValueError(f"start must have shape [B, n_free] = [{batch}, {n_free}], got {tuple(p0.shape)}")
    y = data.reshape(batch, -1)
    s = None if sigma is None else sigma.reshape(batch, -1)

    hint = ("; drop_converged=True calls it on the problems still iterating, which needs a model that follows its "
            "parameters' batch: fit this one with drop_converged=False") if drop_converged else ""

    def mu_of_p(p: torch.Tensor) -> torch.Tensor:
        try:
            out = model(parameters.as_dict(p))
        except RuntimeError as error:  # e.g. per-problem arrays of size B broadcast against a subset
            if p.shape[0] == batch:
                raise
            raise ValueError(f"the model failed on {p.shape[0]} of {batch} problems ({str(error).splitlines()[0]}){hint}") from error
        if out.ndim == 0 or out.shape[0] != p.shape[0] or out[0].numel() != n_points:
            raise ValueError(f"the model returned shape {tuple(out.shape)} for {p.shape[0]} problems (expected "
                             f"[{p.shape[0]}, ...] with {n_points} points each){hint}")
        return out.reshape(p.shape[0], -1)

    def mu_of_u(u: torch.Tensor) -> torch.Tensor:
        return mu_of_p(parameters.to_physical(u))

    def nll_of(mu: torch.Tensor, rows) -> torch.Tensor:
        return negative_log_likelihood(mu, y[rows], loss, None if s is None else s[rows], dim=1)

    tangents = torch.eye(n_free, dtype=torch.float64, device=device)[:, None, :].expand(n_free, batch, n_free).contiguous()  # [P, B, P]
    vectorised = [True]

    def jacobian(function, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if vectorised[0]:  # one vmapped JVP over the P one-hot tangents
            try:
                value, columns = torch.func.vmap(lambda t: torch.func.jvp(function, (x,), (t,)), out_dims=(None, 0))(tangents[:, : x.shape[0]])
                return value, columns.permute(1, 2, 0)  # [B, n], [B, n, P]
            except Exception:  # a model that vmap cannot trace (e.g. .item() inside): fall back to P separate JVPs
                vectorised[0] = False
        columns = []
        for j in range(n_free):
            value, column = torch.func.jvp(function, (x,), (tangents[j, : x.shape[0]],))
            columns.append(column)
        return value, torch.stack(columns, -1)  # [B, n], [B, n, P]

    def weights(mu: torch.Tensor, rows) -> torch.Tensor:
        return 1.0 / mu if loss == "poisson" else 1.0 / s[rows] ** 2

    with torch.no_grad():
        first = model(parameters.as_dict(p0))
    check_model_output(first, data, loss)
    u = parameters.to_unconstrained(p0)
    every = torch.arange(batch, device=device)
    mu = mu_of_u(u).detach()
    nll = nll_of(mu, every)
    damping = torch.full((batch,), float(initial_damping), dtype=torch.float64, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    iterations = torch.zeros(batch, dtype=torch.long, device=device)
    eye = torch.eye(n_free, dtype=torch.float64, device=device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        rows = active.nonzero()[:, 0] if drop_converged else every  # the problems evaluated this iteration
        u_r, nll_r, damping_r, active_r = u[rows], nll[rows], damping[rows], active[rows]
        mu, jac = jacobian(mu_of_u, u_r)
        w = weights(mu, rows)
        gradient = torch.einsum("bnp,bn->bp", jac, w * (y[rows] - mu))  # = -dNLL/du
        fisher = torch.einsum("bnp,bn,bnq->bpq", jac, w, jac)
        diag = fisher.diagonal(dim1=-2, dim2=-1).clamp_min(1e-300)
        system = fisher + damping_r[:, None, None] * torch.diag_embed(diag) + 1e-14 * diag.amax(-1)[:, None, None] * eye
        step = torch.linalg.solve(system, gradient[..., None])[..., 0]
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        u_new = u_r + step
        with torch.no_grad():
            mu_new = mu_of_u(u_new)
            nll_new = nll_of(mu_new, rows)
        accept = active_r & torch.isfinite(nll_new) & (nll_new <= nll_r)
        change = (nll_r - nll_new).abs() / nll_r.abs().clamp_min(1.0)
        u[rows] = torch.where(accept[:, None], u_new, u_r)
        nll[rows] = torch.where(accept, nll_new, nll_r)
        damping[rows] = torch.where(accept, damping_r / 10, damping_r * 10).clamp(1e-12, 1e16)
        iterations[rows] += active_r.long()
        done = (accept & (change < tolerance)) | (damping[rows] >= 1e15)
        active[rows] = active_r & ~done
    # uncertainties and convergence in physical parameters
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    p_hat = parameters.to_physical(u)
    mu, jac_p = jacobian(mu_of_p, p_hat)
    w = weights(mu, every)
    fisher = torch.einsum("bnp,bn,bnq->bpq", jac_p, w, jac_p)
    gradient = torch.einsum("bnp,bn->bp", jac_p, w * (y - mu))
    _, info = torch.linalg.cholesky_ex(0.5 * (fisher + fisher.transpose(-1, -2)))
    positive = info == 0
    cov = torch.where(positive[:, None, None], torch.linalg.pinv(fisher, hermitian=True), torch.full_like(fisher, float("nan")))
    edm = 0.5 * torch.einsum("bp,bpq,bq->b", gradient, cov, gradient)
    gof = goodness(mu, y, loss, s, dim=1)
    dof = n_points - n_free
    if scale_covariance and dof > 0:
        cov = cov * (gof / dof)[:, None, None]
    converged = positive & torch.isfinite(nll) & ~active & (edm < 1e-4)
    errors = cov.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    return BatchFitResult(
        free_names=list(parameters.free_names), units=dict(parameters.units), values=p_hat.detach().cpu().numpy(),
        errors=errors.detach().cpu().numpy(), covariance=cov.detach().cpu().numpy(), nll=nll.detach().cpu().numpy(),
        goodness=gof.detach().cpu().numpy(), dof=dof, converged=converged.cpu().numpy(), iterations=iterations.cpu().numpy(),
        wall_time_s=time.perf_counter() - started, loss_kind=loss, covariance_scaled=bool(scale_covariance),
    )
