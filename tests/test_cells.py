"""GRU and LSTM cells: gradient checks, step == sequence, masks, torch twins, the registry, bad input.

Tests taking ``step_kernels`` run twice: with the compiled step kernels and with the NumPy loops only."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bptt
from bptt.cells import CELLS, get_cell
from bptt.drivers.bidirectional import birnn_forward
from bptt.errors import BpttError
from tests.conftest import (
    N_A,
    N_X,
    B,
    T,
    cell_inputs,
    cell_params,
    initial_state,
    make_params,
    model_params,
    ragged_mask,
    random_labels,
)
from tests.conftest import state_parts as parts
from tests.helpers import torch_twin, torch_twin_grads

GATED = ["gru", "lstm"]
# central differences with ε = 1e-5: the gated cells' losses carry more round-off than the vanilla
# cell's, and at ε = 1e-6 it reaches 1e-6 of relative error (truncation, O(ε²), is ~1e-8 at 1e-5)
EPS = 1e-5


def state_arrays(cell, state):
    """The initial state as named arrays: {"a0": …} or {"a0": …, "c0": …}."""
    return {"a0": state[0], "c0": state[1]} if cell == "lstm" else {"a0": state}


def from_arrays(cell, arrs):
    """The parameters and initial state out of a gradcheck's arrays."""
    p = {k: arrs[k] for k in get_cell(cell).keys}
    return p, ((arrs["a0"], arrs["c0"]) if cell == "lstm" else arrs["a0"])


def named_state_grads(cell, d_state):
    return {"a0": d_state[0], "c0": d_state[1]} if cell == "lstm" else {"a0": d_state}


# ------------------------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("cell", GATED)
def test_gradcheck_step_functions(rng, cell):
    """L = Σ a⟨t⟩ ⊙ R (+ Σ c⟨t⟩ ⊙ R_c) through one step: every parameter, x_t and the previous state."""
    p = cell_params(cell, rng)
    arrays = {"x_t": rng.standard_normal((B, N_X)), **p}
    arrays.update({"a_prev": rng.standard_normal((B, N_A)), "c_prev": rng.standard_normal((B, N_A))})
    if cell == "gru":
        del arrays["c_prev"]
    R, R_c = rng.standard_normal((B, N_A)), rng.standard_normal((B, N_A))

    def fun(arrs):
        q = {k: arrs[k] for k in p}
        if cell == "gru":
            a, cache = bptt.gru_step_forward(arrs["x_t"], arrs["a_prev"], q)
            dx, da_prev, grads = bptt.gru_step_backward(R, cache)
            return float((a * R).sum()), {**grads, "x_t": dx, "a_prev": da_prev}
        (a, c), cache = bptt.lstm_step_forward(arrs["x_t"], (arrs["a_prev"], arrs["c_prev"]), q)
        dx, (da_prev, dc_prev), grads = bptt.lstm_step_backward((R, R_c), cache)
        L = float((a * R).sum() + (c * R_c).sum())
        return L, {**grads, "x_t": dx, "a_prev": da_prev, "c_prev": dc_prev}

    report = bptt.gradcheck(fun, arrays, eps=EPS)
    assert set(report.errors) == set(arrays)
    assert report.max_error < 1e-6, str(report)


def random_weight_loss(cell, R, mask=None, carry=None):
    """L = Σ A ⊙ R (+ a⟨T⟩ · R_a + c⟨T⟩ · R_c as carry-in gradients), through the public API.

    Masked steps are padding: their outputs are not part of the loss.
    """
    if mask is not None:
        R = R * mask[:, :, None]

    def fun(arrs):
        p, state0 = from_arrays(cell, arrs)
        A, cache = bptt.rnn_forward(arrs["X"], state0, p, mask=mask, cell=cell)
        L = float((A * R).sum())
        if carry is not None:
            R_a, R_c = carry
            L += float((A[-1] * R_a).sum()) if R_a is not None else 0.0
            L += float((cache.C[-1] * R_c).sum()) if R_c is not None else 0.0
        d_state_T = carry if cell == "lstm" else (None if carry is None else carry[0])
        dX, d_state0, grads = bptt.rnn_backward(R, cache, d_state_T)
        return L, {**grads, "X": dX, **named_state_grads(cell, d_state0)}

    return fun


CARRIES = {"gru": ["none", "a"], "lstm": ["none", "a", "c", "a and c"], "rnn": ["none", "a"]}


@pytest.mark.parametrize(
    "cell, carry", [(cell, carry) for cell in ["rnn", *GATED] for carry in CARRIES[cell]]
)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_sequence_every_array(rng, step_kernels, cell, carry, masked):
    """Every parameter, X and the initial state (a0, and c0 for the LSTM), with ragged masks and carry-ins."""
    p = cell_params(cell, rng)
    arrays = {"X": rng.standard_normal((T, B, N_X)), **p, **state_arrays(cell, initial_state(cell, rng))}
    mask = ragged_mask([5, 2, 4], T) if masked else None
    R = rng.standard_normal((T, B, N_A))
    R_a = rng.standard_normal((B, N_A)) if "a" in carry else None
    R_c = rng.standard_normal((B, N_A)) if "c" in carry else None
    report = bptt.gradcheck(
        random_weight_loss(cell, R, mask, None if carry == "none" else (R_a, R_c)), arrays, eps=EPS
    )
    assert set(report.errors) == set(arrays)
    assert report.max_error < 1e-6, str(report)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_sequence_loss(rng, step_kernels, cell, output, masked):
    n_y = 3
    p = model_params(cell, rng, n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    state0 = initial_state(cell, rng)
    Y = random_labels(rng, output, n_y, T, B)
    mask = ragged_mask([3, 5, 1], T) if masked else None

    def fun(arrs):
        return bptt.sequence_loss(arrs, X, Y, a0=state0, mask=mask, output=output, cell=cell)

    report = bptt.gradcheck(fun, p, eps=EPS)
    assert set(report.errors) == set(p)
    assert report.max_error < 1e-6, str(report)


def test_gradcheck_catches_a_wrong_lstm_gradient(rng):
    """The check can fail: dc0 off by 1% in one entry is reported, the rest is not."""
    p = cell_params("lstm", rng)
    arrays = {"X": rng.standard_normal((T, B, N_X)), **p, **state_arrays("lstm", initial_state("lstm", rng))}
    right = random_weight_loss("lstm", rng.standard_normal((T, B, N_A)))

    def wrong(arrs):
        L, grads = right(arrs)
        grads["c0"][1, 2] *= 1.01
        return L, grads

    report = bptt.gradcheck(wrong, arrays, eps=EPS)
    assert report.errors["c0"] > 1e-3
    assert report.errors["a0"] < 1e-6 and report.errors["W_aa"] < 1e-6


# ---------------------------------------------------------------------------------- step == sequence


@pytest.mark.parametrize("cell", GATED)
def test_step_functions_equal_sequence_functions(rng, step_kernels, cell):
    """Looping the step pair gives the sequence pair: states, dX, initial-state gradients, grads, messages."""
    p, X, state0, dA, d_state_T = cell_inputs(cell, rng)  # a carry-in gradient for every part of the state
    c = get_cell(cell)
    A, cache = c.fast_forward(X, state0, p, None)
    dX, d_state0, grads, M = c.fast_backward(dA, cache, d_state_T, messages=True)

    state, caches = state0, []
    for t in range(T):
        if cell == "gru":
            state, step_cache = bptt.gru_step_forward(X[t], state, p)
            np.testing.assert_allclose(state, A[t], rtol=0, atol=1e-14)
        else:
            state, step_cache = bptt.lstm_step_forward(X[t], state, p)
            np.testing.assert_allclose(state[0], A[t], rtol=0, atol=1e-14)
            np.testing.assert_allclose(state[1], cache.C[t], rtol=0, atol=1e-14)
        caches.append(step_cache)
    total = {k: np.zeros_like(v) for k, v in p.items()}
    d_next = d_state_T
    for t in reversed(range(T)):
        if cell == "gru":
            da_t = dA[t] + d_next  # the whole message reaching a⟨t⟩
            np.testing.assert_allclose(M[t], da_t, rtol=0, atol=1e-13)
            dx_t, d_next, g_t = bptt.gru_step_backward(da_t, caches[t])
        else:
            da_t = dA[t] + d_next[0]
            s = caches[t]
            dc_t = d_next[1] + da_t * s.o * (1 - s.tanh_c**2)  # the whole message reaching c⟨t⟩
            np.testing.assert_allclose(M[0][t], da_t, rtol=0, atol=1e-13)
            np.testing.assert_allclose(M[1][t], dc_t, rtol=0, atol=1e-13)
            dx_t, d_next, g_t = bptt.lstm_step_backward((da_t, d_next[1]), s)
        np.testing.assert_allclose(dx_t, dX[t], rtol=0, atol=1e-13)
        for k in total:
            total[k] += g_t[k]  # each shared parameter: the sum of its per-step contributions
    for ours, theirs in zip(parts(cell, d_state0), parts(cell, d_next)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)
    for k in total:
        np.testing.assert_allclose(total[k], grads[k], rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("cell", GATED)
def test_padded_batch_equals_sequences_one_by_one(rng, step_kernels, cell):
    """Masked steps carry the state (a, and c), add nothing, and pass every message through."""
    lengths = [5, 2, 4]
    p, X, state0, dA, d_T = cell_inputs(cell, rng)  # reaches the last real state of each sequence
    A, cache = bptt.rnn_forward(X, state0, p, mask=ragged_mask(lengths, T), cell=cell)
    dX, d0, grads = bptt.rnn_backward(dA, cache, d_T)

    def pick(s, b):  # batch entry b of a state
        return tuple(x[b : b + 1] for x in s) if cell == "lstm" else s[b : b + 1]

    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for b, n in enumerate(lengths):
        A_b, c_b = bptt.rnn_forward(X[:n, b : b + 1], pick(state0, b), p, cell=cell)
        np.testing.assert_allclose(A[:n, b : b + 1], A_b, atol=1e-14)
        np.testing.assert_allclose(A[n:, b], np.broadcast_to(A_b[-1, 0], (T - n, N_A)), atol=1e-14)
        if cell == "lstm":  # padding carries the last real cell state too
            np.testing.assert_allclose(
                cache.C[n:, b], np.broadcast_to(c_b.C[-1, 0], (T - n, N_A)), atol=1e-14
            )
        dX_b, d0_b, g_b = bptt.rnn_backward(dA[:n, b : b + 1], c_b, pick(d_T, b))
        np.testing.assert_allclose(dX[:n, b : b + 1], dX_b, atol=1e-13)
        np.testing.assert_array_equal(dX[n:, b], 0.0)  # padded steps get no gradient
        for ours, theirs in zip(parts(cell, d0), parts(cell, d0_b)):
            np.testing.assert_allclose(ours[b : b + 1], theirs, atol=1e-13)
        for k in total:
            total[k] += g_b[k]
    for k in total:
        np.testing.assert_allclose(grads[k], total[k], atol=1e-12, err_msg=k)


@pytest.mark.parametrize("cell", GATED)
def test_fast_path_leaves_inputs_untouched(rng, step_kernels, cell):
    p, X, state0, dA, d_T = cell_inputs(cell, rng)
    mask = ragged_mask([5, 2, 4], T)
    inputs = [X, dA, *parts(cell, state0), *parts(cell, d_T), *p.values()]
    copies = [x.copy() for x in inputs]
    c = get_cell(cell)
    _, cache = c.fast_forward(X, state0, p, mask)
    c.fast_backward(dA, cache, d_T, messages=True)
    for before, after in zip(copies, inputs):
        np.testing.assert_array_equal(before, after)


# ------------------------------------------------------------------------- the state, for the drivers


@pytest.mark.parametrize("cell", ["rnn", *GATED])
def test_state_field_by_field_and_windows_of_a_cache(rng, cell):
    """What drivers use: fields/join, the zero state, state_before, and a window == running that stretch."""
    c = get_cell(cell)
    p = cell_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    state0 = initial_state(cell, rng)
    mask = ragged_mask([5, 2, 4], T)
    assert c.fields(c.join(parts(cell, state0))) == parts(cell, state0)
    zero = c.fields(c.zero_state(B, N_A, np.float32))
    assert len(zero) == (2 if cell == "lstm" else 1) and all(
        z.shape == (B, N_A) and not z.any() for z in zero
    )
    da = rng.standard_normal((B, N_A))
    assert c.fields(c.on_a(da))[0] is da and c.fields(c.on_a(da))[1:] in ((), (None,))  # nothing on c
    A, cache = c.fast_forward(X, state0, p, mask)
    assert all(x is y for x, y in zip(c.fields(c.state_before(cache, 0)), parts(cell, state0)))
    last = (A[-1], cache.C[-1]) if cell == "lstm" else (A[-1],)
    assert all(x is y or np.shares_memory(x, y) for x, y in zip(c.fields(c.state_before(cache, T)), last))
    for s, e in [(0, 2), (1, 4), (3, 5), (4, 5)]:
        win = c.window(cache, s, e)
        A_se, again = c.fast_forward(X[s:e], c.state_before(cache, s), p, mask[s:e])
        assert type(win) is type(again) and win._fields == again._fields
        for name, ours, theirs in zip(win._fields, win, again):
            if name in ("params", "g_prime"):  # shared by every step
                assert ours is theirs or ours is cache._asdict()[name], name
            elif name == "zoneout":  # none here (tests/test_zoneout.py cuts one)
                assert ours is None and theirs is None
            else:
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14, err_msg=name)


# ---------------------------------------------------------------------------------- state Jacobian


@pytest.mark.parametrize("cell", ["rnn", *GATED])
def test_state_jacobian_equals_finite_differences_of_one_step(rng, step_kernels, cell):
    """∂state⟨t⟩/∂state⟨t−1⟩ per batch entry, against central differences; skipped steps give I."""
    c = get_cell(cell)
    p = cell_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    mask = ragged_mask([5, 2, 4], T)
    _, cache = c.fast_forward(X, initial_state(cell, rng), p, mask)
    flat = np.concatenate([cache.A, cache.C], axis=2) if cell == "lstm" else cache.A  # (T, B, n_s)
    flat0 = np.concatenate([cache.a0, cache.c0], axis=1) if cell == "lstm" else cache.a0
    n_s = c.state_size(N_A)
    eps = 1e-6

    def step(t, s):  # step t from the flat state s (B, n_s), masked as it was
        s0 = (s[:, :N_A], s[:, N_A:]) if cell == "lstm" else s
        A, step_cache = c.fast_forward(X[t : t + 1], s0, p, mask[t : t + 1])
        return np.concatenate([A[0], step_cache.C[0]], axis=1) if cell == "lstm" else A[0]

    for t in range(T):
        J = c.state_jacobian(cache, t)
        assert J.shape == (B, n_s, n_s)
        prev = flat0 if t == 0 else flat[t - 1]  # (B, n_s)
        np.testing.assert_allclose(step(t, prev), flat[t], rtol=0, atol=1e-14)
        J_num = np.empty((B, n_s, n_s))
        for j in range(n_s):
            e = np.zeros_like(prev)
            e[:, j] = eps
            J_num[:, :, j] = (step(t, prev + e) - step(t, prev - e)) / (2 * eps)
        np.testing.assert_allclose(J, J_num, rtol=0, atol=1e-8, err_msg=f"step {t}")
        for b in np.flatnonzero(~mask[t]):
            np.testing.assert_array_equal(J[b], np.eye(n_s))


# ------------------------------------------------------------------------------------ PyTorch twins

try:
    import torch
except ImportError:  # the reference tests need it; the rest of this module does not
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

shapes = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(GATED),
        "T": st.integers(1, 6),
        "B": st.integers(1, 4),
        "n_x": st.integers(1, 5),
        "n_a": st.integers(1, 6),
        "seed": st.integers(0, 2**16),
    }
)


def draw_case(cfg, data):
    """Parameters, X, an initial state and its carry-in gradient, lengths and a random-weight R."""
    cell, T_, B_, n_x, n_a = (cfg[k] for k in ("cell", "T", "B", "n_x", "n_a"))
    lengths = data.draw(st.lists(st.integers(1, T_), min_size=B_, max_size=B_), label="lengths")
    rng = np.random.default_rng(cfg["seed"])
    p = cell_params(cell, rng, n_x, n_a, scale=0.7)
    X = rng.standard_normal((T_, B_, n_x))
    state0 = initial_state(cell, rng, B_, n_a)
    d_T = initial_state(cell, rng, B_, n_a)
    R = rng.standard_normal((T_, B_, n_a)) * ragged_mask(lengths, T_)[:, :, None]
    return cell, p, X, state0, d_T, lengths, R


def as_pair(cell, s):
    """A state as a pair: (a, c) for the LSTM, (a, None) otherwise."""
    return s if cell == "lstm" else (s, None)


def assert_gradients_match_twin(cell, dX, d0, grads, Xt, h0, c0, module):
    """bptt's dX, initial-state gradients and parameter gradients equal the torch twin's, to 1e-10."""
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(as_pair(cell, d0)[0], h0.grad.numpy()[0], rtol=0, atol=1e-10)
    if cell == "lstm":
        np.testing.assert_allclose(d0[1], c0.grad.numpy()[0], rtol=0, atol=1e-10)
    for k, ref in torch_twin_grads(module, cell).items():
        np.testing.assert_allclose(grads[k], ref, rtol=1e-10, atol=1e-10, err_msg=k)


def torch_states(cell, *states):
    """Initial states, one per direction, as leaf tensors (directions, B, n_a): h0, and c0 (LSTM) or None."""
    stacks = [np.stack(x) for x in zip(*(parts(cell, s) for s in states))]  # one stack per part of the state
    tensors = [torch.tensor(x, requires_grad=True) for x in stacks]
    return tensors[0], (tensors[1] if cell == "lstm" else None)


def torch_run(module, cell, X, lengths, state0):
    """Run a one-way twin over a padded batch of the given lengths (as a packed sequence), from state0.

    Returns: X's tensor, the initial states' tensors (h0, c0 or None), the outputs (T, B, n_a)
    and the final states (h, c or None).
    """
    Xt = torch.tensor(X, requires_grad=True)
    h0, c0 = torch_states(cell, state0)
    packed = torch.nn.utils.rnn.pack_padded_sequence(Xt, lengths, enforce_sorted=False)
    out, final = module(packed, (h0, c0) if cell == "lstm" else h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=X.shape[0])
    h_n, c_n = final if cell == "lstm" else (final, None)
    return Xt, (h0, c0), out, (h_n, c_n)


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=shapes, data=st.data())
def test_packed_variable_lengths_match_torch(step_kernels, cfg, data):
    """Ragged batch through a packed sequence: outputs, final states and every gradient to 1e-10."""
    cell, p, X, state0, d_T, lengths, R = draw_case(cfg, data)
    A, cache = bptt.rnn_forward(X, state0, p, mask=ragged_mask(lengths, X.shape[0]), cell=cell)
    dX, d0, grads = bptt.rnn_backward(R, cache, d_T)

    module = torch_twin(cell, p)
    Xt, (h0, c0), out, (h_n, c_n) = torch_run(module, cell, X, lengths, state0)
    d_a, d_c = as_pair(cell, d_T)
    L = (out * torch.from_numpy(R)).sum() + (h_n[0] * torch.from_numpy(d_a)).sum()
    if cell == "lstm":
        L = L + (c_n[0] * torch.from_numpy(d_c)).sum()
    L.backward()
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(A[:n, b], out.detach().numpy()[:n, b], rtol=0, atol=1e-10)
    np.testing.assert_allclose(A[-1], h_n.detach().numpy()[0], rtol=0, atol=1e-10)  # the last real states
    if cell == "lstm":
        np.testing.assert_allclose(cache.C[-1], c_n.detach().numpy()[0], rtol=0, atol=1e-10)
    assert_gradients_match_twin(cell, dX, d0, grads, Xt, h0, c0, module)


def reverse_within_lengths(X, lengths):
    """Each sequence of the padded batch reversed within its own length (flax's flip_sequences)."""
    out = np.zeros_like(X)
    for b, n in enumerate(lengths):
        out[:n, b] = X[:n, b][::-1]
    return out


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=shapes, data=st.data())
def test_bidirectional_equals_two_manual_runs(step_kernels, cfg, data):
    """A bidirectional twin == bptt forward on X plus bptt forward on X reversed per length."""
    cell, p, X, state0, d_T, lengths, R = draw_case(cfg, data)
    rng = np.random.default_rng(cfg["seed"] + 1)
    q = cell_params(cell, rng, X.shape[2], p["W_aa"].shape[1], scale=0.7)  # the reverse direction
    state0_r = initial_state(cell, rng, X.shape[1], p["W_aa"].shape[1])
    R_r = rng.standard_normal(R.shape) * ragged_mask(lengths, X.shape[0])[:, :, None]
    mask = ragged_mask(lengths, X.shape[0])

    A_f, cache_f = bptt.rnn_forward(X, state0, p, mask=mask, cell=cell)
    dX_f, d0_f, g_f = bptt.rnn_backward(R, cache_f)
    X_r = reverse_within_lengths(X, lengths)
    A_r, cache_r = bptt.rnn_forward(X_r, state0_r, q, mask=mask, cell=cell)
    dX_r, d0_r, g_r = bptt.rnn_backward(reverse_within_lengths(R_r, lengths), cache_r)

    module = torch_twin(cell, p, q)
    Xt = torch.tensor(X, requires_grad=True)
    h0, c0 = torch_states(cell, state0, state0_r)  # forward direction first, then reverse
    hx = (h0, c0) if cell == "lstm" else h0
    packed = torch.nn.utils.rnn.pack_padded_sequence(Xt, lengths, enforce_sorted=False)
    out, _ = module(packed, hx)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=X.shape[0])
    (out * torch.from_numpy(np.concatenate([R, R_r], axis=2))).sum().backward()

    n_a = p["W_aa"].shape[1]
    out = out.detach().numpy()
    np.testing.assert_allclose(out[:, :, :n_a] * mask[:, :, None], A_f * mask[:, :, None], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[:, :, n_a:], reverse_within_lengths(A_r, lengths), rtol=0, atol=1e-10)
    dX_r_back = reverse_within_lengths(dX_r, lengths)  # both directions read the same x⟨t⟩
    np.testing.assert_allclose(dX_f + dX_r_back, Xt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(as_pair(cell, d0_f)[0], h0.grad.numpy()[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(as_pair(cell, d0_r)[0], h0.grad.numpy()[1], rtol=0, atol=1e-10)
    if cell == "lstm":
        np.testing.assert_allclose(d0_f[1], c0.grad.numpy()[0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(d0_r[1], c0.grad.numpy()[1], rtol=0, atol=1e-10)
    for suffix, ours in (("_l0", g_f), ("_l0_reverse", g_r)):
        for k, ref in torch_twin_grads(module, cell, suffix).items():
            np.testing.assert_allclose(ours[k], ref, rtol=1e-10, atol=1e-10, err_msg=k + suffix)


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=shapes)
def test_full_length_run_of_a_torch_initialised_module(step_kernels, cfg):
    """Weights move both ways: a torch module's own init (bias_hh ≠ 0) read by params_from_torch, and back."""
    cell, T_, B_, n_x, n_a = (cfg[k] for k in ("cell", "T", "B", "n_x", "n_a"))
    torch.manual_seed(cfg["seed"])
    kind = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
    module = kind(n_x, n_a, dtype=torch.float64)
    p = bptt.params_from_torch({k: v.detach().numpy() for k, v in module.state_dict().items()}, cell)
    rng = np.random.default_rng(cfg["seed"])
    X = rng.standard_normal((T_, B_, n_x))
    state0 = initial_state(cell, rng, B_, n_a)
    R = rng.standard_normal((T_, B_, n_a))
    A, cache = bptt.rnn_forward(X, state0, p, cell=cell)
    dX, d0, grads = bptt.rnn_backward(R, cache)

    Xt = torch.tensor(X, requires_grad=True)
    h0, c0 = torch_states(cell, state0)
    hx = (h0, c0) if cell == "lstm" else h0
    out, _ = module(Xt, hx)
    (out * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(A, out.detach().numpy(), rtol=0, atol=1e-10)
    assert_gradients_match_twin(cell, dX, d0, grads, Xt, h0, c0, module)
    back = bptt.params_to_torch(p, cell)  # and back: the same module output from bptt's weights
    twin = kind(n_x, n_a, dtype=torch.float64)
    twin.load_state_dict({k: torch.tensor(v) for k, v in back.items()})
    np.testing.assert_allclose(twin(torch.tensor(X), hx)[0].detach().numpy(), A, rtol=0, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_modules_go_to_bptt_and_back(rng, cell, bidirectional):
    """from_torch reads a 3-layer module; bptt's layers compute its output; to_torch rebuilds it."""
    kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    torch.manual_seed(3)
    module = kind(4, 5, num_layers=3, bidirectional=bidirectional, dtype=torch.float64)
    layers = bptt.from_torch(module)
    assert len(layers) == 3 and all(isinstance(x, tuple) == bidirectional for x in layers)
    T_, B_ = 6, 3
    lengths = [6, 2, 4]
    mask = np.arange(T_)[:, None] < np.array(lengths)[None, :]
    X = rng.standard_normal((T_, B_, 4)) * mask[:, :, None]
    A = X
    for layer in layers:  # bptt: each layer's output is the next one's input
        if bidirectional:
            A, _ = birnn_forward(A, mask, *layer, cell=cell)
        else:
            A, _ = bptt.rnn_forward(A, None, layer, mask=mask, cell=cell)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(X), lengths, enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(module(packed)[0], total_length=T_)
    np.testing.assert_allclose(A * mask[:, :, None], out.detach().numpy(), rtol=0, atol=1e-12)
    twin = bptt.to_torch(layers, cell)  # and back: the same outputs from bptt's weights
    assert type(twin) is kind and twin.num_layers == 3 and twin.bidirectional == bidirectional
    np.testing.assert_allclose(
        twin(torch.tensor(X))[0].detach().numpy(),
        module(torch.tensor(X))[0].detach().numpy(),
        rtol=0,
        atol=1e-12,
    )
    assert bptt.from_torch(module.state_dict(), cell=cell)[2] is not None


def test_torch_conversion_errors_name_the_argument():
    p = {"W_ax": np.zeros((2, 3)), "W_aa": np.zeros((2, 2)), "b_a": np.zeros(2)}
    with pytest.raises(BpttError, match=r"^layers\[1\]: expected a parameter dict"):
        bptt.to_torch([p, "no"])
    with pytest.raises(BpttError, match="^layers: every layer must be bidirectional, or none"):
        bptt.to_torch([p, (p, p)])
    with pytest.raises(BpttError, match="^cell: expected one of"):
        bptt.from_torch({"weight_ih_l0": np.zeros((2, 3))})
    with pytest.raises(BpttError, match="^module: no weight_ih_l0"):
        bptt.from_torch({}, cell="gru")


# ------------------------------------------------------------------------------- the vanilla cell


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("masked", [False, True])
def test_vanilla_cell_through_the_new_api_is_the_old_api(rng, activation, masked):
    """cell="rnn" runs the same code: bit-identical states, gradients and messages."""
    p = {k: v for k, v in make_params().items() if k in bptt.drivers.rnn.RNN_KEYS}
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    dA = rng.standard_normal((T, B, N_A))
    da_T = rng.standard_normal((B, N_A))
    mask = ragged_mask([5, 2, 4], T) if masked else None
    A_old, cache_old = bptt.drivers.rnn._forward(X, a0, p, mask, activation)
    old = bptt.drivers.rnn._backward(dA, cache_old, da_T, messages=True)

    A, cache = bptt.rnn_forward(X, a0, p, mask, cell="rnn", activation=activation)
    np.testing.assert_array_equal(A, A_old)
    for new in (bptt.rnn_backward(dA, cache, da_T), bptt.rnn_backward(dA, cache, da_T=da_T)):
        for ours, theirs in zip(new, old):
            for k in ours if isinstance(ours, dict) else [None]:
                np.testing.assert_array_equal(ours[k] if k else ours, theirs[k] if k else theirs)
    c = get_cell("rnn", activation)
    A_c, cache_c = c.fast_forward(X, a0, p, mask)
    np.testing.assert_array_equal(A_c, A_old)
    np.testing.assert_array_equal(c.fast_backward(dA, cache_c, da_T, messages=True)[3], old[3])


def test_vanilla_defaults_are_unchanged(rng):
    """init_params and sequence_loss without cell= give exactly what they always gave."""
    n_x, n_a, n_y = 4, 6, 2
    old = {}  # the draws of init_params before cells existed
    r = np.random.default_rng(3)
    k = 1 / np.sqrt(n_a)
    for name, shape in {
        "W_ax": (n_a, n_x),
        "W_aa": (n_a, n_a),
        "b_a": (n_a,),
        "W_ya": (n_y, n_a),
        "b_y": (n_y,),
    }.items():
        old[name] = (
            np.zeros(shape, np.float32) if name[0] == "b" else r.uniform(-k, k, shape).astype(np.float32)
        )
    for new in (bptt.init_params(n_x, n_a, n_y, seed=3), bptt.init_params(n_x, n_a, n_y, seed=3, cell="rnn")):
        assert list(new) == list(old)
        for name in old:
            assert new[name].dtype == np.float32
            np.testing.assert_array_equal(new[name], old[name])
    p = bptt.init_params(n_x, n_a, n_y, seed=1, dtype=np.float64)
    X = rng.standard_normal((T, B, n_x))
    Y = rng.integers(0, 2, size=(T, B, n_y)).astype(np.float64)
    L, g = bptt.sequence_loss(p, X, Y)
    L_c, g_c = bptt.sequence_loss(p, X, Y, cell="rnn")
    assert L == L_c
    for name in g:
        np.testing.assert_array_equal(g[name], g_c[name])


# ------------------------------------------------------------------------------ registry and init


@pytest.mark.parametrize("cell", ["rnn", *GATED])
def test_registry_describes_each_cell(cell):
    c = CELLS[cell]
    assert c.name == cell and get_cell(cell) is c
    gates, paired = {"rnn": (1, False), "gru": (3, False), "lstm": (4, True)}[cell]
    assert (c.gates, c.paired, c.state_size(5)) == (gates, paired, 10 if paired else 5)
    p = bptt.init_params(3, 5, 2, cell=cell, seed=0, dtype=np.float64)
    shapes = c.param_shapes(3, 5)
    assert list(p) == [*shapes, "W_ya", "b_y"]
    for name, shape in shapes.items():
        assert p[name].shape == shape, name
    k = 1 / np.sqrt(5)
    assert np.abs(p["W_ax"]).max() <= k and np.abs(p["W_aa"]).max() <= k  # PyTorch's U(±1/√n_a)
    assert np.abs(p["b_a"]).max() <= (2 * k if cell != "rnn" else 0)  # bias_ih + bias_hh
    A, cache = bptt.rnn_forward(np.zeros((2, 1, 3)), None, p, cell=cell)
    assert type(cache) is c.cache_type and bptt.cells.cell_of(cache) is c


def test_lstm_inits():
    n_a, T_max = 50, 40
    p = bptt.init_params(3, n_a, 1, cell="lstm", init="forget1", dtype=np.float64)
    np.testing.assert_array_equal(p["b_a"][n_a : 2 * n_a], 1.0)
    assert np.abs(p["b_a"][:n_a]).max() <= 2 / np.sqrt(n_a)  # the other gates keep PyTorch's default
    p = bptt.init_params(3, n_a, 1, cell="lstm", init="chrono", T_max=T_max, dtype=np.float64)
    b_i, b_f = p["b_a"][:n_a], p["b_a"][n_a : 2 * n_a]
    assert b_f.min() >= 0 and b_f.max() <= np.log(T_max - 1)  # log U(1, T_max − 1)
    assert b_f.max() - b_f.min() > 1  # spread over the range, not a constant
    np.testing.assert_array_equal(b_i, -b_f)


@pytest.mark.parametrize("cell", ["rnn", *GATED])
def test_orthogonal_init(cell):
    """Each gate's block of W_aa is orthogonal (Q Qᵀ = I) and random; the rest is the default's."""
    n_a = 7
    p = bptt.init_params(3, n_a, 2, cell=cell, init="orthogonal", seed=4, dtype=np.float64)
    default = bptt.init_params(3, n_a, 2, cell=cell, seed=4, dtype=np.float64)
    blocks = p["W_aa"].reshape(-1, n_a, n_a)
    for Q in blocks:
        np.testing.assert_allclose(Q @ Q.T, np.eye(n_a), atol=1e-12)
    assert not np.allclose(np.abs(blocks[0]), np.eye(n_a))  # not a signed identity
    np.testing.assert_array_equal(p["W_ax"], default["W_ax"])  # drawn first, as the default's
    assert np.abs(p["b_a"]).max() <= (2 / np.sqrt(n_a) if cell != "rnn" else 0)


def test_identity_init_is_the_irnn():
    """IRNN (Le, Jaitly & Hinton 2015): W_aa = I, b_a = 0, small input weights N(0, 0.001²)."""
    p = bptt.init_params(2, 64, 1, init="identity", dtype=np.float64)
    np.testing.assert_array_equal(p["W_aa"], np.eye(64))
    np.testing.assert_array_equal(p["b_a"], 0)
    assert 0.0005 < p["W_ax"].std() < 0.002
    X = np.zeros((50, 1, 2))  # no input: relu keeps a⟨0⟩ for ever, nothing fades
    a0 = np.abs(np.random.default_rng(0).standard_normal((1, 64)))
    A, _ = bptt.rnn_forward(X, a0, p, activation="relu")
    np.testing.assert_array_equal(A[-1], a0)


def test_gru_chrono_init():
    """The update gate z keeps a⟨t−1⟩: its bias log U(1, T_max − 1); the GRU takes no forget1."""
    n_a, T_max = 50, 40
    p = bptt.init_params(3, n_a, 1, cell="gru", init="chrono", T_max=T_max, dtype=np.float64)
    b_z = p["b_a"][n_a : 2 * n_a]
    assert b_z.min() >= 0 and b_z.max() <= np.log(T_max - 1) and b_z.max() - b_z.min() > 1
    with pytest.raises(bptt.BpttError, match="forget1"):
        bptt.init_params(3, n_a, 1, cell="gru", init="forget1")
    with pytest.raises(bptt.BpttError, match="T_max"):
        bptt.init_params(3, n_a, 1, cell="gru", init="chrono")


# ------------------------------------------------------------------------------------ bad input


def bad_cases():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, B, N_X))
    lstm, gru = cell_params("lstm", rng), cell_params("gru", rng)
    vanilla = {k: v for k, v in make_params().items() if k in bptt.drivers.rnn.RNN_KEYS}
    a0 = np.zeros((B, N_A))
    _, lstm_cache = bptt.rnn_forward(X, None, lstm, cell="lstm")
    dA = np.zeros((T, B, N_A))
    Y = np.zeros((T, B))
    return {
        "unknown cell": (lambda: bptt.rnn_forward(X, None, gru, cell="transformer"), ["cell", "transformer"]),
        "unknown cell, init_params": (lambda: bptt.init_params(4, 6, 1, cell="gru2"), ["cell", "gru2"]),
        "unknown cell, sequence_loss": (lambda: bptt.sequence_loss(gru, X, Y, cell="Lstm"), ["cell", "Lstm"]),
        "LSTM state an array": (lambda: bptt.rnn_forward(X, a0, lstm, cell="lstm"), ["state0", "pair"]),
        "LSTM state of three": (
            lambda: bptt.rnn_forward(X, (a0, a0, a0), lstm, cell="lstm"),
            ["state0", "pair"],
        ),
        "LSTM carry-in an array": (lambda: bptt.rnn_backward(dA, lstm_cache, a0), ["d_state_T", "pair"]),
        "LSTM step state an array": (lambda: bptt.lstm_step_forward(X[0], a0, lstm), ["state_prev", "pair"]),
        "vanilla params to LSTM": (
            lambda: bptt.rnn_forward(X, None, vanilla, cell="lstm"),
            ["W_aa", "(6, 6)", "LSTM", "cell='rnn'"],
        ),
        "LSTM params to GRU": (
            lambda: bptt.rnn_forward(X, None, lstm, cell="gru"),
            ["W_aa", "GRU", "cell='lstm'"],
        ),
        "GRU params to LSTM": (lambda: bptt.rnn_forward(X, None, gru, cell="lstm"), ["W_aa", "cell='gru'"]),
        "GRU without b_hn": (
            lambda: bptt.rnn_forward(X, None, {k: gru[k] for k in ("W_ax", "W_aa", "b_a")}, cell="gru"),
            ["params", "b_hn"],
        ),
        "b_hn of the wrong size": (
            lambda: bptt.rnn_forward(X, None, {**gru, "b_hn": np.zeros(N_A + 1)}, cell="gru"),
            ["b_hn", "n_a"],
        ),
        "W_ax rows of another size": (
            lambda: bptt.rnn_forward(X, None, {**lstm, "W_ax": np.zeros((3 * N_A, N_X))}, cell="lstm"),
            ["W_ax", "4·n_a"],
        ),
        "b_hn float32": (
            lambda: bptt.rnn_forward(X, None, {**gru, "b_hn": gru["b_hn"].astype(np.float32)}, cell="gru"),
            ["b_hn", "dtype"],
        ),
        "X float32, params float64": (
            lambda: bptt.rnn_forward(X.astype(np.float32), None, lstm, cell="lstm"),
            ["X", "dtype"],
        ),
        "c0 of the wrong size": (
            lambda: bptt.rnn_forward(X, (a0, np.zeros((B, N_A + 1))), lstm, cell="lstm"),
            ["c0", "n_a"],
        ),
        "c0 of ints": (
            lambda: bptt.rnn_forward(X, (a0, np.zeros((B, N_A), dtype=int)), lstm, cell="lstm"),
            ["c0", "floating"],
        ),
        "dc_T of the wrong size": (
            lambda: bptt.rnn_backward(dA, lstm_cache, (None, np.zeros((B + 1, N_A)))),
            ["dc_T", "B"],
        ),
        "activation for a GRU": (
            lambda: bptt.rnn_forward(X, None, gru, cell="gru", activation="relu"),
            ["activation"],
        ),
        "carry-in given twice": (lambda: bptt.rnn_backward(dA, lstm_cache, a0, da_T=a0), ["da_T", "once"]),
        "forget1 for a GRU": (
            lambda: bptt.init_params(4, 6, 1, cell="gru", init="forget1"),
            ["init", "forget1"],
        ),
        "chrono without T_max": (lambda: bptt.init_params(4, 6, 1, cell="lstm", init="chrono"), ["T_max"]),
        "T_max without chrono": (
            lambda: bptt.init_params(4, 6, 1, cell="lstm", T_max=10),
            ["T_max", "chrono"],
        ),
        "GRU step cache to the LSTM step": (
            lambda: bptt.lstm_step_backward((a0, a0), bptt.gru_step_forward(X[0], a0, gru)[1]),
            ["cache", "lstm_step_forward"],
        ),
    }


BAD = bad_cases()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_a_one_line_error_naming_the_argument(case):
    call, texts = BAD[case]
    with pytest.raises(bptt.BpttError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for text in texts:
        assert text in message, message


# ------------------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", GATED)
def test_dtype_is_kept_end_to_end(rng, step_kernels, cell, dtype):
    p = bptt.init_params(N_X, N_A, 2, cell=cell, dtype=dtype)
    X = rng.standard_normal((T, B, N_X)).astype(dtype)
    Y = rng.integers(0, 2, size=(T, B, 2))
    L, grads = bptt.sequence_loss(p, X, Y, cell=cell)
    assert all(g.dtype == dtype for g in grads.values())
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    L64, g64 = bptt.sequence_loss(p64, X.astype(np.float64), Y, cell=cell)
    assert L == pytest.approx(L64, rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(grads[k], g64[k], rtol=0, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("cell", ["rnn", *GATED])
def test_a_tiny_set_is_overfit(rng, cell):
    """Adam drives the loss on 3 short sequences to near 0."""
    n_x, n_a, T_ = 3, 12, 6
    X = rng.standard_normal((T_, 3, n_x))
    Y = rng.integers(0, 2, size=(T_, 3)).astype(np.float64)
    p = bptt.init_params(n_x, n_a, 1, cell=cell, seed=0, dtype=np.float64)
    opt = bptt.Adam(lr=0.05)
    L0, _ = bptt.sequence_loss(p, X, Y, cell=cell)
    for _ in range(300):
        L, grads = bptt.sequence_loss(p, X, Y, cell=cell)
        opt.step(p, grads)
    assert L < 0.02 * L0, (L0, L)


@pytest.mark.parametrize("cell", GATED)
def test_sequence_loss_messages(rng, cell):
    """The last step's message comes from its output only: ∂L/∂a⟨T⟩ = (ŷ⟨T⟩ − y⟨T⟩) W_ya, and for
    the LSTM ∂L/∂c⟨T⟩ = ∂L/∂a⟨T⟩ ⊙ o⟨T⟩ ⊙ (1 − tanh²c⟨T⟩); every message has the state's shape."""
    p = {**cell_params(cell, rng), "W_ya": rng.standard_normal((1, N_A)), "b_y": rng.standard_normal(1)}
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    L, grads, M = bptt.sequence_loss(p, X, Y, return_messages=True, cell=cell)
    A, cache = bptt.rnn_forward(X, None, {k: p[k] for k in get_cell(cell).keys}, cell=cell)
    dA_T = (bptt.output_forward(A, p)[-1] - Y[-1][:, None]) @ p["W_ya"]
    M_a = M[0] if cell == "lstm" else M
    assert M_a.shape == (T, B, N_A)
    np.testing.assert_allclose(M_a[-1], dA_T, rtol=0, atol=1e-13)
    if cell == "lstm":
        o_T = cache.G[-1, :, 3 * N_A :]
        np.testing.assert_allclose(M[1][-1], dA_T * o_T * (1 - np.tanh(cache.C[-1]) ** 2), rtol=0, atol=1e-13)
