"""Data-parallel training on MPI: the global batch split over processes, the gradients summed, one update.

    mpiexec -n 4 bptt train ...          (pip install 'bptt[mpi]': mpi4py and the MPICH wheel)

Every process holds the whole model, the same optimizer state and the same random generator. One step:

    1. every process draws the same global batch (``--batch-size`` sentences) from the shared generator;
    2. each computes the loss and BPTT gradients of its share (`Comm.share`: a contiguous run of the
       batch's sentences) through the trainer's ``train_step``, with the loss divided by the *global*
       batch size, and with every random number drawn for the whole batch (`ShareDraws`): each process
       draws the (T, B, ·) array of the global batch and keeps its own sentences' columns, so a sentence
       gets the same dropout mask and <unk> replacements whatever the split, and the generator moves on
       alike everywhere;
    3. the shares' losses and gradients are summed by ONE Allreduce over one contiguous buffer
       (`MPIComm.sum`), laid out as

           [L | control values | every gradient, in params order: a dense one flattened, an embedding
            table's as a dense block over the rows the batch used]

       An embedding table's gradient is sparse (`RowGrad`: the rows a share used). The processes first
       gather their row ids (one small allgather of integers), and each writes its rows into a dense
       block over the union, zeros elsewhere: the Allreduce then sums |union| × d numbers, never the
       whole table, and every process gets back the batch's RowGrad over the rows it used (but maybe
       the padding row, whose gradient is always 0: lazy Adam leaves it as it is either way);
    4. every process clips and applies the same update to the same weights: they stay identical
       (checked once per epoch, `Comm.check_same`).

So the model does not depend on the number of processes, up to the order of floating-point sums:
1, 2 and 3 processes train float64 models equal to 1e-12.

The control values ride in the same buffer: whether any process got SIGINT/SIGTERM (all stop before
the next batch and process 0 saves the state), and process 0's clock (the time budget is its). Only
process 0 writes files and prints progress. Errors every process meets alike (a bad option, a
diverging run) end every process with one line from process 0; any other (a full disk on process 0,
a second Ctrl-C, a bug) ends the whole job through MPI_Abort with a line naming the process, so
nothing waits forever on a partner that is gone. A process killed outright (SIGKILL, out of memory)
is mpiexec's to report: it stops the others.

Without mpiexec (or with one process) `world` is `Comm`, whose every operation is the identity, and
mpi4py is never imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import sys
import time
import traceback
from typing import NamedTuple

import numpy as np

from ..errors import BpttError
from ..models.layers import RowGrad

ABORT_GRACE_S = 1.0  # seconds between the last line and MPI_Abort (see MPIComm.abort)

# environment variables by which launchers tell a process how many there are: the PMI of MPICH, Intel MPI
# and Slurm's srun, and Open MPI's mpirun
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
WAIT_POLL = 0.002  # seconds between looks while waiting asleep for the other processes (`MPIComm.wait`)
INSTALL = "pip install 'bptt[mpi]'"


class Share(NamedTuple):
    """This process's sentences of a global batch, and what its loss is averaged over."""

    lo: int  # first sentence of the batch this process computes
    hi: int  # one past its last
    mean_over: float  # the global batch size; inf for an empty share's stand-in (it counts for nothing)


class ShareDraws:
    """Random numbers for the columns ``lo:hi`` of a (T, B) batch, drawn as for the whole batch.

    ``random(shape)`` with shape (T', hi − lo, ...) draws the global (T, B, ...) array from the shared
    generator and returns its part [:T', lo:hi]: the numbers a sentence gets, and the generator's state
    afterwards, are those of one process drawing for the whole batch.
    """

    def __init__(self, rng, T, B, lo, hi):
        self.rng, self.T, self.B, self.lo, self.hi = rng, T, B, lo, hi

    def random(self, shape, dtype=np.float64):
        T, n = shape[0], shape[1]
        if T > self.T or n != self.hi - self.lo:
            raise ValueError(f"a draw of shape {shape} is not a part of a ({self.T}, {self.B}) batch")
        full = self.rng.random((self.T, self.B, *shape[2:]), dtype=dtype)  # (T, B, ...) the whole batch's
        return full[:T, self.lo : self.hi]


def packed_size(grads, control, unions):
    """The length and dtype of the buffer `pack` fills."""
    values = [g.values if isinstance(g, RowGrad) else g for g in grads.values()]
    n = 1 + len(control)
    for k, g in grads.items():
        n += len(unions[k]) * g.values.shape[1] if k in unions else g.size
    return n, np.result_type(*values)


def pack(L, grads, control, unions, buf=None):
    """One process's loss, ``control`` values and gradients in one contiguous buffer, to be summed:

        [L | control | each gradient in the order of ``grads``: a dense one flattened, a RowGrad as a
         dense (|union|, d) block over ``unions[k]`` (the rows any process used): its own rows, zeros
         elsewhere]

    Returns: the buffer (``buf`` when given, of `packed_size`).
    """
    if buf is None:
        n, dtype = packed_size(grads, control, unions)
        buf = np.empty(n, dtype=dtype)
    head = 1 + len(control)
    buf[0] = L
    buf[1:head] = control
    at = head
    for k, g in grads.items():
        if k in unions:
            d = g.values.shape[1]
            block = buf[at : at + len(unions[k]) * d].reshape(len(unions[k]), d)  # (|union|, d)
            block[...] = 0
            block[np.searchsorted(unions[k], g.rows)] = g.values  # its rows' places in the union
            at += block.size
        else:
            buf[at : at + g.size] = g.reshape(-1)
            at += g.size
    return buf


def unpack(buf, grads, unions, n_control):
    """A (summed) buffer laid out by `pack`, read back as views: (L, grads, control), each RowGrad over
    its union; ``grads`` gives the names, shapes and order."""
    head = 1 + n_control
    out, at = {}, head
    for k, g in grads.items():
        if k in unions:
            d = g.values.shape[1]
            block = buf[at : at + len(unions[k]) * d].reshape(len(unions[k]), d)  # (|union|, d)
            out[k] = RowGrad(unions[k], block, g.n_rows)
            at += block.size
        else:
            out[k] = buf[at : at + g.size].reshape(g.shape)
            at += g.size
    return float(buf[0]), out, tuple(float(v) for v in buf[1:head])


def share_of(rank, size, n):
    """Process ``rank``'s part of a batch of ``n`` sentences among ``size``: a contiguous run, the first
    n % size processes one longer. An empty part (n < size) computes sentence 0 for nothing: it draws
    the batch's random numbers like the others. Returns: `Share`."""
    per, extra = divmod(n, size)
    lo = rank * per + min(rank, extra)
    hi = lo + per + (rank < extra)
    if hi == lo:
        return Share(0, 1, math.inf)
    return Share(lo, hi, n)


def agreed_signal(count, signums):
    """The signal all processes stop on, from how many got one and the sum of their numbers: the one
    they got when alike (mpiexec passes a Ctrl-C to every process), else SIGTERM; None when none did."""
    count, signums = round(count), round(signums)
    if not count:
        return None
    return signums // count if signums % count == 0 else int(signal.SIGTERM)


def agreed(error, quiet=False):
    """Mark an exception as raised alike by every process (not a reason to abort the job); ``quiet``:
    another process says it, this one exits without a word."""
    error.agreed = True
    error.quiet = quiet
    return error


class Comm:
    """One process: every collective operation is the identity. `MPIComm` is the same over MPI."""

    rank, size = 0, 1

    @property
    def root(self):
        """Process 0: the one that writes files and prints."""
        return self.rank == 0

    def share(self, n):
        """This process's part of a batch of ``n`` sentences. Returns: `Share`."""
        return Share(0, n, n)

    def sum(self, L, grads, control=()):
        """The loss, gradients and ``control`` values (floats) summed over the processes."""
        return L, grads, tuple(control)

    def sum_agreeing(self, L, grads, signum, seconds):
        """`sum` of a training step that also settles what every process must act on alike: the stop
        signal any of them got (``signum``, or None) and process 0's clock (``seconds``).

        Returns: (L, grads, the agreed signal or None, process 0's seconds).
        """
        own = signum or 0
        L, grads, (count, signums, seconds) = self.sum(
            L, grads, (own > 0, own, seconds if self.root else 0.0)
        )
        return L, grads, agreed_signal(count, signums), seconds

    def agree(self, values):
        """Floats summed over the processes (a small Allreduce)."""
        return tuple(values)

    def broadcast(self, obj):
        """Process 0's ``obj`` on every process."""
        return obj

    def allgather(self, obj):
        """Every process's ``obj``, in rank order."""
        return [obj]

    def on_root(self, fn):
        """``fn()`` run by process 0; its result (or its `BpttError`) on every process."""
        return fn()

    def every(self, fn):
        """``fn()`` run by every process; a `BpttError` of any ends them all, process 0 saying it."""
        return fn()

    def check_same(self, arrays, when):
        """Refuse weights that differ between the processes (they apply the same updates)."""

    def collective(self):
        """A context in which an error not raised alike by every process ends the whole job."""
        return contextlib.nullcontext()


class MPIComm(Comm):
    """`Comm` over an MPI communicator (mpi4py)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._buffer = np.empty(0)  # reused by `sum`, grown as needed

    def share(self, n):
        return share_of(self.rank, self.size, n)

    def sum(self, L, grads, control=()):
        sparse = [k for k, g in grads.items() if isinstance(g, RowGrad)]
        unions = {}
        if sparse:  # the rows of each table that some process used: the batch's rows
            gathered = self.comm.allgather([grads[k].rows for k in sparse])
            for i, k in enumerate(sparse):
                unions[k] = np.unique(np.concatenate([rows[i] for rows in gathered]))
        n, dtype = packed_size(grads, control, unions)
        if self._buffer.dtype != dtype or self._buffer.size < n:
            self._buffer = np.empty(n, dtype=dtype)
        buf = pack(L, grads, control, unions, self._buffer[:n])
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)  # the step's one Allreduce
        return unpack(buf, grads, unions, len(control))

    def agree(self, values):
        self.wait()
        buf = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return tuple(float(v) for v in buf)

    def wait(self):
        """Wait for every process, asleep: before the collectives that follow work of process 0 alone
        (checking, writing, plotting), where MPI's own waiting would spin and take a CPU from it."""
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(WAIT_POLL)

    def broadcast(self, obj):
        self.wait()
        return self.comm.bcast(obj, root=0)

    def allgather(self, obj):
        return self.comm.allgather(obj)

    def on_root(self, fn):
        outcome = error = None
        if self.root:
            try:
                outcome = ("ok", fn())
            except BpttError as e:
                error, outcome = e, ("error", str(e))
        kind, value = self.broadcast(outcome)
        if kind == "ok":
            return value
        raise agreed(error) if self.root else agreed(BpttError(value), quiet=True)

    def every(self, fn):
        result = error = None
        try:
            result = fn()
        except BpttError as e:
            error = e
        messages = self.allgather(None if error is None else str(error))
        failed = [r for r, m in enumerate(messages) if m is not None]
        if not failed:
            return result
        first = failed[0]
        if first == self.rank == 0:
            raise agreed(error)
        message = messages[first] if first == 0 else f"process {first}: {messages[first]}"
        raise agreed(BpttError(message), quiet=not self.root)

    def check_same(self, arrays, when):
        digest = hashlib.sha256()
        for k, a in arrays.items():
            digest.update(k.encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        digests = self.allgather(digest.hexdigest())
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise agreed(
                BpttError(
                    f"the weights of process {differ[0]} differ from process 0's {when}: every process must"
                    " run the same NumPy and BLAS on the same kind of CPU"
                ),
                quiet=not self.root,
            )

    @contextlib.contextmanager
    def collective(self):
        try:
            yield
        except BaseException as e:
            if getattr(e, "agreed", False):
                raise
            self.abort(e)

    def abort(self, error):
        """Say why this process stops, then end every process of the job (MPI_Abort)."""
        if isinstance(error, BpttError):
            what, code = str(error), 2
        elif isinstance(error, KeyboardInterrupt):
            signum = getattr(error, "signum", signal.SIGINT)
            what, code = f"interrupted ({signal.Signals(signum).name})", 128 + signum
        else:
            traceback.print_exc()
            what, code = f"{type(error).__name__}: {error}", 1
        print(
            f"bptt: error: process {self.rank} of {self.size}: {what}; stopping all {self.size} processes"
            " (the last checkpoint is kept: --resume continues from it)",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        # mpiexec forwards each process's output through its proxies, and MPI_Abort has them killed:
        # give the line a moment to get through before that (without it, a loaded machine lost it)
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


_world = None


def world():
    """The processes of this run: `MPIComm` when started by mpiexec as one of several, else `Comm`.

    mpi4py is imported (and MPI initialised) only when the launcher's environment says there are
    several processes; without mpi4py that is an error, not N processes each training alone.
    """
    global _world
    if _world is not None:
        return _world
    size = launched_size()
    if size <= 1:
        _world = Comm()
        return _world
    try:
        from mpi4py import MPI
    except ImportError:
        raise BpttError(
            f"started by mpiexec as one of {size} processes, but mpi4py is not installed: {INSTALL}"
        ) from None
    comm = MPI.COMM_WORLD  # an MPI error is a Python exception (mpi4py's default): `collective` aborts
    _world = MPIComm(comm) if comm.Get_size() > 1 else Comm()
    return _world


def launched_size():
    """How many processes the launcher started (1 without one)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1
