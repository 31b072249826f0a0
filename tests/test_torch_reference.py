"""Reference twin: the same equations through torch.nn.RNN + autograd, in float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from tests.helpers import torch_rnn, torch_rnn_grads

torch = pytest.importorskip("torch")


def torch_model_loss(p, X, Y, a0, lengths, output, activation, reduction):
    """The lecture model built from torch.nn.RNN (fed one sequence at a time) and autograd."""
    rnn = torch_rnn(p, activation=activation)
    W_ya = torch.tensor(p["W_ya"], requires_grad=True)
    b_y = torch.tensor(p["b_y"], requires_grad=True)
    Xt = torch.tensor(X, requires_grad=True)
    a0t = torch.tensor(a0, requires_grad=True)
    L = 0
    As = []
    for b, n in enumerate(lengths):
        A_b, _ = rnn(Xt[:n, b : b + 1], a0t[b : b + 1][None])  # (n, 1, n_a)
        As.append(A_b)
        Z = A_b @ W_ya.T + b_y  # (n, 1, n_y)
        if output == "sigmoid":
            y = torch.tensor(Y[:n, b : b + 1], dtype=torch.float64)
            L = L + torch.nn.functional.binary_cross_entropy_with_logits(Z, y, reduction="sum")
        else:
            y = torch.tensor(Y[:n, b], dtype=torch.long)
            L = L + torch.nn.functional.cross_entropy(Z[:, 0], y, reduction="sum")
    if reduction == "mean":
        L = L / len(lengths)
    L.backward()
    grads = {**torch_rnn_grads(rnn), "W_ya": W_ya.grad.numpy(), "b_y": b_y.grad.numpy()}
    return L.item(), grads, As


shapes = st.fixed_dictionaries(
    {
        "T": st.integers(1, 7),
        "B": st.integers(1, 4),
        "n_x": st.integers(1, 5),
        "n_a": st.integers(1, 6),
        "n_y": st.integers(1, 4),
        "seed": st.integers(0, 2**16),
        "output": st.sampled_from(["sigmoid", "softmax"]),
        "activation": st.sampled_from(["tanh", "relu"]),
        "reduction": st.sampled_from(["sum", "mean"]),
    }
)


@settings(max_examples=40, deadline=None)
@given(cfg=shapes, data=st.data())
def test_forward_and_every_gradient_match_torch(cfg, data):
    T, B, n_x, n_a, n_y = (cfg[k] for k in ("T", "B", "n_x", "n_a", "n_y"))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B), label="lengths")
    rng = np.random.default_rng(cfg["seed"])
    p = {
        "W_ax": rng.standard_normal((n_a, n_x)) * 0.7,
        "W_aa": rng.standard_normal((n_a, n_a)) * 0.7,
        "b_a": rng.standard_normal(n_a) * 0.3,
        "W_ya": rng.standard_normal((n_y, n_a)),
        "b_y": rng.standard_normal(n_y) * 0.3,
    }
    X = rng.standard_normal((T, B, n_x))
    a0 = rng.standard_normal((B, n_a)) * 0.5
    mask = np.arange(T)[:, None] < np.array(lengths)[None, :]
    if cfg["output"] == "sigmoid":
        Y = rng.integers(0, 2, size=(T, B, n_y)).astype(np.float64)
    else:
        Y = rng.integers(0, n_y, size=(T, B))
    kw = dict(output=cfg["output"], activation=cfg["activation"], reduction=cfg["reduction"])
    L, grads = bptt.sequence_loss(p, X, Y, a0=a0, mask=mask, **kw)
    L_ref, g_ref, A_ref = torch_model_loss(p, X, Y, a0, lengths, **kw)

    A, _ = bptt.rnn_forward(
        X, a0, {k: p[k] for k in ("W_ax", "W_aa", "b_a")}, mask=mask, activation=cfg["activation"]
    )
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(A[:n, b : b + 1], A_ref[b].detach().numpy(), rtol=0, atol=1e-10)
    assert L == pytest.approx(L_ref, rel=1e-10, abs=1e-10)
    for k in p:
        np.testing.assert_allclose(grads[k], g_ref[k], rtol=1e-10, atol=1e-10, err_msg=k)


# each loop of bptt.drivers.rnn, chosen by shape in use, forced here at one small shape, with and without
# the compiled kernels (with them, "fused" runs its forward and the general backward)
LOOPS = {"general": {}, "fused": {}, "gemv": {}, "g′ step by step": {"_G_PRIME_PER_STEP": 1}}


@pytest.mark.parametrize(
    "loop, step_kernels",
    [(loop, k) for loop in LOOPS for k in ("compiled", "numpy") if (loop, k) != ("gemv", "numpy")],
    indirect=["step_kernels"],
)
@pytest.mark.parametrize("B", [1, 3])
def test_every_loop_matches_torch(rng, monkeypatch, step_kernels, loop, B):
    for name, value in LOOPS[loop].items():
        monkeypatch.setattr(bptt.drivers.rnn, name, value)
    T, n_x, n_a = 6, 4, 5
    p = {
        "W_ax": rng.standard_normal((n_a, n_x)),
        "W_aa": rng.standard_normal((n_a, n_a)) * 0.5,
        "b_a": rng.standard_normal(n_a),
    }
    X = rng.standard_normal((T, B, n_x))
    a0 = rng.standard_normal((B, n_a))
    R = rng.standard_normal((T, B, n_a))
    forced = loop if loop in bptt.drivers.rnn.LOOPS else "general"
    A, cache = bptt.drivers.rnn._forward(X, a0, p, None, "tanh", loop=forced)
    dX, da0, grads, _ = bptt.drivers.rnn._backward(R, cache, loop=forced)

    rnn = torch_rnn(p)
    Xt = torch.tensor(X, requires_grad=True)
    a0t = torch.tensor(a0[None], requires_grad=True)
    out, _ = rnn(Xt, a0t)
    (out * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(A, out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(da0, a0t.grad.numpy()[0], atol=1e-10)
    for key, ref in torch_rnn_grads(rnn).items():
        np.testing.assert_allclose(grads[key], ref, atol=1e-10, err_msg=key)
