"""Where the loss is (every step, the last real step, chosen steps) and the regression head, every cell.

Gradient checks in float64, PyTorch twins to 1e-10 (packed ragged batches), the ledger and the
unrolled graph with one loss at the end, one worked example, and the errors.
"""

import numpy as np
import pytest

import bptt
from bptt.heads.placement import placed_head, placed_targets, scored_steps
from tests.conftest import (
    N_A,
    N_X,
    B,
    T,
    initial_state,
    model_params,
    ragged_mask,
    random_labels,
    state_parts,
)
from tests.helpers import png_ok, torch_twin, torch_twin_grads

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]
OUTPUTS = ["linear", "sigmoid", "softmax"]
PLACEMENTS = ["all", "last", "steps"]
EPS = 1e-5  # central differences through the gated cells' σ: as tests/test_cells.py
LENGTHS = [5, 2, 4]


def targets(rng, output, n_y, placement):
    """Targets for ``placement``: one per sequence for "last", else one per step."""
    if placement == "last":
        if output == "softmax":
            return rng.integers(0, n_y, size=B)
        Y = rng.standard_normal((B, n_y)) if output == "linear" else rng.integers(0, 2, (B, n_y)) * 1.0
        return Y[:, 0] if n_y == 1 else Y
    if output == "linear":
        return rng.standard_normal((T, B, n_y))
    return random_labels(rng, output, n_y)


def loss_at(rng, placement):
    """None, "last" or a random (T, B) choice of steps (some scored steps are padding: never scored)."""
    if placement == "all":
        return None
    if placement == "last":
        return "last"
    S = rng.random((T, B)) < 0.5
    S[-1] = True  # at least one step of each sequence, padded or not
    return S


def problem(rng, cell, output, placement, n_y=3, masked=True):
    p = model_params(cell, rng, n_y=1 if output == "sigmoid" and placement == "last" else n_y)
    n_y = p["W_ya"].shape[0]
    X = rng.standard_normal((T, B, N_X))
    mask = ragged_mask(LENGTHS, T) if masked else None
    return p, X, targets(rng, output, n_y, placement), mask, loss_at(rng, placement)


# ------------------------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_gradcheck_every_head_and_placement(rng, cell, activation, output, placement):
    """Every parameter, from a random initial state, with ragged masks: float64 central differences."""
    p, X, Y, mask, at = problem(rng, cell, output, placement)
    state0 = initial_state(cell, rng)
    kw = dict(output=output, activation=activation, cell=cell, loss_at=at, reduction="mean")
    report = bptt.gradcheck(lambda arrs: bptt.sequence_loss(arrs, X, Y, state0, mask, **kw), p, eps=EPS)
    assert set(report.errors) == set(p)
    assert report.max_error < 1e-6, str(report)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("placement", ["last", "steps"])
def test_gradcheck_inputs_and_initial_state_through_the_placed_loss(rng, cell, placement):
    """X and a0 (c0) too: what reaches the start of the sequence from the scored steps alone."""
    p, X, Y, mask, at = problem(rng, cell, "linear", placement)
    state0 = state_parts(cell, initial_state(cell, rng))
    names = ("a0", "c0")[: len(state0)]
    arrays = {"X": X, **dict(zip(names, state0))}
    c = bptt.get_cell(cell)

    def fun(arrs):
        s0 = c.join(arrs[k] for k in names)
        A, cache = c.forward(arrs["X"], s0, p, mask)
        steps = scored_steps(at, mask, T, B, np)
        L_s, _, dA, _ = placed_head(A, p, placed_targets(Y, "linear", 3, steps, T, B), "linear", steps)
        dX, d0, _ = c.backward(dA, cache)
        return float(L_s.sum()), {"X": dX, **dict(zip(names, c.fields(d0)))}

    report = bptt.gradcheck(fun, arrays, eps=EPS)
    assert report.max_error < 1e-6, str(report)


# ----------------------------------------------------------------------------------- PyTorch twins


def torch_placed(cell, activation, p, X, Y, mask, at, output, reduction="mean"):
    """The loss and gradients of torch's module + Linear head, the loss at ``at`` (packed, ragged batch)."""
    import torch

    rnn = torch_twin(cell, p, activation=activation)
    head = torch.nn.Linear(N_A, p["W_ya"].shape[0], dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(p["W_ya"]))
        head.bias.copy_(torch.tensor(p["b_y"]))
    lengths = mask.sum(axis=0)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(X), torch.tensor(lengths), enforce_sorted=False
    )
    A, _ = torch.nn.utils.rnn.pad_packed_sequence(
        rnn(packed)[0], total_length=T
    )  # (T, B, n_a), 0 past the end
    if at is None:
        rows = torch.tensor(mask)
        A_s, Y_s = A[rows], torch.tensor(Y)[rows]
    elif isinstance(at, str):
        A_s, Y_s = A[torch.tensor(lengths - 1), torch.arange(B)], torch.tensor(Y)
    else:
        rows = torch.tensor(at & mask)
        A_s, Y_s = A[rows], torch.tensor(Y)[rows]
    Z = head(A_s)
    if output == "linear":
        L = 0.5 * ((Z - Y_s.reshape(Z.shape)) ** 2).sum()
    elif output == "sigmoid":
        L = torch.nn.functional.binary_cross_entropy_with_logits(Z, Y_s.reshape(Z.shape), reduction="sum")
    else:
        L = torch.nn.functional.cross_entropy(Z, Y_s, reduction="sum")
    L = L / B if reduction == "mean" else L
    L.backward()
    grads = torch_twin_grads(rnn, cell)
    grads.update({"W_ya": head.weight.grad.numpy(), "b_y": head.bias.grad.numpy()})
    return L.item(), grads


# every step with sigmoid or softmax: tests/test_cells.py and tests/test_torch_reference.py
TWINNED = [(o, at) for o in OUTPUTS for at in PLACEMENTS if at != "all" or o == "linear"]


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize(("output", "placement"), TWINNED)
def test_every_head_and_placement_matches_torch(rng, cell, activation, output, placement):
    p, X, Y, mask, at = problem(rng, cell, output, placement)
    kw = dict(output=output, activation=activation, cell=cell, loss_at=at, reduction="mean")
    L, grads = bptt.sequence_loss(p, X, Y, mask=mask, **kw)
    L_torch, grads_torch = torch_placed(cell, activation, p, X, Y, mask, at, output)
    assert L == pytest.approx(L_torch, rel=1e-12, abs=1e-12)
    assert set(grads_torch) == set(grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_torch[k], rtol=0, atol=1e-10, err_msg=k)


# ----------------------------------------------------------------------------- equivalences, edge cases


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_placements_agree_with_every_step(rng, output, cell):
    """loss_at: "all" == None; every step chosen == every step; "last" == only the last real step chosen."""
    p, X, Y, mask, _ = problem(rng, cell, output, "all", n_y=1 if output == "sigmoid" else 3)
    base = bptt.sequence_loss(p, X, Y, mask=mask, output=output, cell=cell)
    for at in ("all", np.ones((T, B), dtype=bool)):
        L, grads = bptt.sequence_loss(p, X, Y, mask=mask, output=output, cell=cell, loss_at=at)
        assert L == pytest.approx(base[0], rel=1e-13)
        for k in grads:
            np.testing.assert_allclose(grads[k], base[1][k], rtol=1e-12, atol=1e-14)
    last = np.zeros((T, B), dtype=bool)
    last[np.array(LENGTHS) - 1, np.arange(B)] = True
    one = Y[np.array(LENGTHS) - 1, np.arange(B)]  # (B,) or (B, n_y): the last real step's target
    L1, g1 = bptt.sequence_loss(p, X, one, mask=mask, output=output, cell=cell, loss_at="last")
    L2, g2 = bptt.sequence_loss(p, X, Y, mask=mask, output=output, cell=cell, loss_at=last)
    assert L1 == pytest.approx(L2, rel=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-12, atol=1e-14)


def test_an_empty_sequence_has_no_last_step(rng):
    """A sequence with no real step adds nothing (its target is never read)."""
    p, X, Y, _, _ = problem(rng, "gru", "linear", "last")
    mask = ragged_mask([5, 0, 4], T)
    L, grads = bptt.sequence_loss(p, X, Y, mask=mask, output="linear", cell="gru", loss_at="last")
    keep = [0, 2]
    L2, grads2 = bptt.sequence_loss(
        p, X[:, keep], Y[keep], mask=mask[:, keep], output="linear", cell="gru", loss_at="last"
    )
    assert L == pytest.approx(L2, rel=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads2[k], rtol=1e-12, atol=1e-14)


def test_unscored_targets_are_not_read(rng):
    """Labels at unscored steps may be anything (here out of range): only the scored ones are checked."""
    p, X, Y, mask, at = problem(rng, "rnn", "softmax", "steps")
    Y = Y.copy()
    Y[~(at & mask)] = 99
    L, _ = bptt.sequence_loss(p, X, Y, mask=mask, output="softmax", loss_at=at)
    assert np.isfinite(L)


def test_worked_example_one_loss_at_the_end():
    """A 1-unit vanilla RNN, two steps, a linear head and ½(ŷ − y)² at the last step, derived by hand.

    a1 = tanh(w x1),  a2 = tanh(u a1 + w x2),  ŷ = v a2 + c,  L = ½ (ŷ − y)²
    ∂L/∂ŷ = e = ŷ − y;  ∂L/∂a2 = e v;  dz2 = e v (1 − a2²);  ∂L/∂a1 = dz2 u (the only message step 1 gets);
    dz1 = dz2 u (1 − a1²);  ∂L/∂w = dz1 x1 + dz2 x2;  ∂L/∂u = dz2 a1;  ∂L/∂v = e a2;  ∂L/∂c = e.
    """
    w, u, v, c, x1, x2, y = 0.5, -1.2, 2.0, 0.1, 1.0, -0.5, 0.3
    a1 = np.tanh(w * x1)
    a2 = np.tanh(u * a1 + w * x2)
    e = v * a2 + c - y
    dz2 = e * v * (1 - a2**2)
    dz1 = dz2 * u * (1 - a1**2)
    p = {"W_ax": np.array([[w]]), "W_aa": np.array([[u]]), "b_a": np.zeros(1), "W_ya": np.array([[v]]),
         "b_y": np.array([c])}  # fmt: skip
    X = np.array([x1, x2]).reshape(2, 1, 1)
    L, grads, M = bptt.sequence_loss(
        p, X, np.array([y]), output="linear", loss_at="last", return_messages=True
    )
    assert L == pytest.approx(0.5 * e**2, rel=1e-14)
    assert grads["W_ax"][0, 0] == pytest.approx(dz1 * x1 + dz2 * x2, rel=1e-13)
    assert grads["W_aa"][0, 0] == pytest.approx(dz2 * a1, rel=1e-13)
    assert grads["b_a"][0] == pytest.approx(dz1 + dz2, rel=1e-13)
    assert grads["W_ya"][0, 0] == pytest.approx(e * a2, rel=1e-13)
    assert grads["b_y"][0] == pytest.approx(e, rel=1e-13)
    np.testing.assert_allclose(M[:, 0, 0], [dz2 * u, e * v], rtol=1e-13)  # ∂L/∂a1, ∂L/∂a2


# ----------------------------------------------------------------------------- ledger and pictures


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("placement", ["last", "steps"])
def test_ledger_with_the_loss_at_chosen_steps(rng, cell, activation, placement):
    output = "linear" if placement == "last" else "softmax"
    p, X, Y, mask, at = problem(rng, cell, output, placement)
    kw = dict(output=output, activation=activation, cell=cell, loss_at=at)
    L, grads, M = bptt.sequence_loss(p, X, Y, mask=mask, **kw, return_messages=True)
    led = bptt.ledger(p, X, Y, mask=mask, **kw)
    assert led.L == pytest.approx(L, rel=1e-12)
    np.testing.assert_allclose(led.messages, state_parts(cell, M)[0], rtol=0, atol=1e-12)
    for k in p:
        np.testing.assert_allclose(led.contributions[k].sum(axis=0), grads[k], rtol=0, atol=1e-12)
    steps = scored_steps(at, mask, T, B, np)
    scored = np.zeros((T, B), dtype=bool)
    scored[steps.t, steps.b] = True
    assert np.all(led.L_t[~scored] == 0) and np.all(led.L_t[scored] > 0)
    head_steps = scored.any(axis=1)  # the head's shares come only from steps scored in some sequence
    assert np.all(led.contributions["W_ya"][~head_steps] == 0)
    assert led.Y_hat.shape == (T, B, p["W_ya"].shape[0])  # the head's output at every step, scored or not


def test_unrolled_graph_of_a_many_to_one_sequence(rng, tmp_path):
    """The trace has gold and L⟨t⟩ at the last step alone; the graph is drawn."""
    from bptt.pictures.plots import draw_unrolled_graph, trace_from_params

    p = bptt.init_params(N_X, N_A, 3, seed=1, dtype=np.float64, cell="lstm")
    X = rng.standard_normal((T, N_X))
    trace = trace_from_params(p, list("abcde"), X, 2, output="softmax", cell="lstm", loss_at="last")
    assert trace["gold"] == [None] * (T - 1) + ["2"]
    assert trace["L_t"][:-1] == [None] * (T - 1) and trace["L_t"][-1] > 0
    png_ok(draw_unrolled_graph(trace, tmp_path / "last.png"))
    steps = [0, 1, 0, 1, 0]
    trace = trace_from_params(
        p, list("abcde"), X, [0, 1, 2, 0, 1], output="softmax", loss_at=steps, cell="lstm"
    )
    assert trace["gold"] == [None, "1", None, "0", None]


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(loss_at="first"), ["loss_at", "'last'", "'first'"]),
        (dict(loss_at=np.ones((T, B + 1))), ["loss_at", "dimension B"]),
        (dict(loss_at=np.full((T, B), 2)), ["loss_at", "0/1"]),
        (dict(loss_at="last", Y=np.zeros((T, B, 1))), ["Y", "one target per sequence", "(B, n_y)"]),
        (dict(loss_at="last", Y=np.zeros(B + 1)), ["Y", "dimension B"]),
        (dict(Y=np.full((T, B), np.nan)), ["Y", "NaN"]),
        (dict(Y=np.zeros((T, B), dtype=int)), ["Y", "floating"]),
        (dict(output="tanh"), ["output", "'linear'"]),
    ],
)
def test_errors_name_the_argument(rng, kw, words):
    p = model_params("rnn", rng, n_y=1)
    X = rng.standard_normal((T, B, N_X))
    args = dict(Y=np.zeros((T, B)), output="linear") | kw
    with pytest.raises(bptt.BpttError) as e:
        bptt.sequence_loss(p, X, args.pop("Y"), **args)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)
