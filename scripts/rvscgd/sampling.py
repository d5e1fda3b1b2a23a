"""Fast, reproducible float32 standard normals for the engine's fast path.

The exact path of ``engine.train`` draws its inputs with numpy's default
``Generator.standard_normal`` in float64. The fast path (``precision="float32"``)
draws them here instead:

Sub-streams
    The seed (int or ``numpy.random.SeedSequence``) is split into a FIXED
    number ``SUBSTREAMS`` of independent PCG64 streams. Child ``i`` has the
    spawn key ``seed.spawn_key + (SPAWN_TAG, i)``; the caller's SeedSequence is
    not mutated (``SeedSequence.spawn`` would be, and a second call with the
    same object would then see other streams). Each step's minibatch is cut
    into ``SUBSTREAMS`` contiguous blocks of inputs, block ``i`` always drawn
    from stream ``i``. What a block holds is therefore a function of the seed
    alone, never of how many threads draw the blocks or in which order.

Box-Muller in float32
    A stream's raw 64-bit words are read in chunks of ``CHUNK`` words (a
    fixed constant; the last chunk of a block may be shorter). A chunk of
    ``m`` words, seen as ``2m`` little-endian 32-bit integers, gives
    ``a = ints[:m]`` and ``b = ints[m:]``, then ``u1 = (a + 1/2) 2^-32`` in
    (0, 1] (float32, exact for small ``a``, never 0) and ``u2 = b 2^-32``;
    ``r = sqrt(-2 log u1)``, and the chunk's ``2m`` normals are
    ``r cos(2 pi u2)`` followed by ``r sin(2 pi u2)``.
    Because ``u1 >= 2^-33`` the magnitudes are capped at ``sqrt(66 log 2)``
    ~ 6.76 (a N(0,1) exceeds it with probability 1.4e-11); the rest of the
    error is float32 rounding (relative ~1e-7). ``tests/unit/test_fast_path.py``
    checks the moments. Words are split into halves on a little-endian view
    (every platform numpy supports in practice; the byte order is checked).

Everything here releases the GIL in numpy (bit generation, ufuncs), so blocks
drawn in threads run in parallel.
"""

from __future__ import annotations

import sys

import numpy as np

# Fixed number of sub-streams a seed is split into (never os.cpu_count()).
SUBSTREAMS = 4
# Appended to the caller's spawn key: keeps these children apart from the
# children the caller may spawn itself (which get keys (..., 0), (..., 1), ...).
SPAWN_TAG = 0x52565346  # "RVSF"
# Raw words per chunk of the Box-Muller transform (temporaries stay in cache).
# Part of the definition of the stream: changing it changes the draws.
CHUNK = 1 << 16

_TWO_POW_M32 = np.float32(2.0**-32)
_TWO_PI_2M32 = np.float32(2.0 * np.pi * 2.0**-32)

if sys.byteorder != "little":  # pragma: no cover - no such numpy platform in use
    raise ImportError("rvscgd.sampling assumes a little-endian machine")


def as_seed_sequence(seed) -> np.random.SeedSequence:
    """``seed`` (int, sequence of ints or SeedSequence) as a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def substream_seeds(seed, count: int = SUBSTREAMS) -> list[np.random.SeedSequence]:
    """The ``count`` children of ``seed`` used by the fast path (seed not mutated)."""
    ss = as_seed_sequence(seed)
    key = tuple(ss.spawn_key)
    return [
        np.random.SeedSequence(ss.entropy, spawn_key=key + (SPAWN_TAG, i), pool_size=ss.pool_size)
        for i in range(int(count))
    ]


def substreams(seed, count: int = SUBSTREAMS) -> list[np.random.PCG64]:
    """PCG64 bit generators of the fast path's sub-streams."""
    return [np.random.PCG64(s) for s in substream_seeds(seed, count)]


class BoxMuller:
    """float32 standard normals from one bit generator (see the module docstring).

    One instance per stream; not thread-safe itself (one thread per stream).
    """

    def __init__(self, bitgen: np.random.BitGenerator):
        self.bitgen = bitgen
        self._r = np.empty(CHUNK, np.float32)
        self._t = np.empty(CHUNK, np.float32)

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill the C-contiguous float32 array ``out`` with N(0, 1) draws."""
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError("out must be a C-contiguous float32 array")
        flat = out.reshape(-1)
        size = flat.size
        pairs = size // 2
        done = 0
        while done < pairs:
            m = min(CHUNK, pairs - done)
            self._pairs(self.bitgen.random_raw(m), flat[2 * done : 2 * (done + m)])
            done += m
        if size % 2:  # an odd tail: one more word, its second normal discarded
            tmp = np.empty(2, np.float32)
            self._pairs(self.bitgen.random_raw(1), tmp)
            flat[-1] = tmp[0]
        return out

    def _pairs(self, words: np.ndarray, out: np.ndarray) -> None:
        m = words.size
        bits = words.view(np.uint32)  # little endian: low half of each word first
        r, t = self._r[:m], self._t[:m]
        # u1 = (a + 1/2) 2^-32 in float32: in [2^-33, 1], exact near 0 (a < 2^23).
        np.add(bits[:m], np.float32(0.5), out=r, dtype=np.float32, casting="unsafe")
        np.multiply(r, _TWO_POW_M32, out=r)
        np.log(r, out=r)
        np.multiply(r, np.float32(-2.0), out=r)
        np.sqrt(r, out=r)
        np.multiply(bits[m:], _TWO_PI_2M32, out=t, dtype=np.float32, casting="unsafe")
        first, second = out[:m], out[m:]
        np.cos(t, out=first)
        np.sin(t, out=second)
        np.multiply(first, r, out=first)
        np.multiply(second, r, out=second)


def block_bounds(count: int, blocks: int = SUBSTREAMS) -> np.ndarray:
    """Split ``count`` items into ``blocks`` contiguous, nearly equal blocks
    (``numpy.array_split`` sizes); returns the ``blocks + 1`` boundaries."""
    base, extra = divmod(int(count), int(blocks))
    sizes = np.full(int(blocks), base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def standard_normal_f32(seed, shape, rows_per_item: int = 1) -> np.ndarray:
    """One array of float32 normals drawn the way the engine draws a minibatch:
    the leading axis (``items * rows_per_item`` rows) cut into ``SUBSTREAMS``
    blocks of whole items, block ``i`` from sub-stream ``i``. For tests and
    one-off draws (the engine keeps its streams across steps)."""
    out = np.empty(shape, np.float32)
    rows = out.shape[0] if out.ndim else 1
    flat = out.reshape(rows, -1)
    bounds = block_bounds(rows // rows_per_item) * rows_per_item
    for i, bg in enumerate(substreams(seed)):
        BoxMuller(bg).fill(flat[bounds[i] : bounds[i + 1]])
    return out


class MinibatchSampler:
    """Successive float32 minibatches of one stream, optionally drawn in threads.

    Each minibatch is an ``(items * rows_per_item, cols)`` float32 array whose
    rows are cut into ``SUBSTREAMS`` blocks of whole items, block ``i`` drawn
    from sub-stream ``i`` (``block_bounds``). Two buffers alternate: while the
    caller works on the minibatch ``next()`` returned, the following one is
    already being drawn by the pool (``threads >= 1``; ``threads = 0`` draws
    synchronously in the caller's thread). The draws do not depend on
    ``threads``.

    ``post(slot, i, lo, hi)``, if given, runs right after block ``i`` of buffer
    ``slot`` (rows ``lo:hi``) is drawn, in the same thread: the place for
    per-block work that should overlap the caller's (e.g. the teacher's
    outputs). A minibatch returned by ``next()`` stays valid until the second
    following call. Use as a context manager (or call ``close()``) so the pool
    stops.
    """

    def __init__(self, seed, items: int, rows_per_item: int, cols: int, threads: int = 0, post=None):
        if int(threads) != threads or threads < 0:
            raise ValueError(f"threads must be an integer >= 0, got {threads!r}")
        self.items, self.rows_per_item, self.cols = int(items), int(rows_per_item), int(cols)
        self.bounds = block_bounds(self.items) * self.rows_per_item
        self.gens = [BoxMuller(bg) for bg in substreams(seed)]
        self.post = post
        self.rows = self.items * self.rows_per_item
        self.buffers = [None, None]  # allocated on first use (one suffices without prefetch)
        self.threads = min(int(threads), SUBSTREAMS)
        self._pool = None
        if self.threads:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="rvscgd-sampler")
        self._slot = 0
        self._pending = None

    def _draw_block(self, slot: int, i: int) -> None:
        lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
        if hi > lo:
            self.gens[i].fill(self.buffers[slot][lo:hi])
            if self.post is not None:
                self.post(slot, i, lo, hi)

    def _start(self, slot: int):
        if self.buffers[slot] is None:
            self.buffers[slot] = np.empty((self.rows, self.cols), np.float32)
        if self._pool is None:
            for i in range(SUBSTREAMS):
                self._draw_block(slot, i)
            return None
        # Stream i is only advanced by block i's task, one minibatch at a time:
        # the next minibatch starts only once this one is complete.
        return slot, [self._pool.submit(self._draw_block, slot, i) for i in range(SUBSTREAMS)]

    def _finish(self, pending) -> None:
        """Wait for a minibatch; blocks no thread has started yet are drawn
        here (the caller would only wait otherwise; the result is the same)."""
        if pending is None:
            return
        slot, futures = pending
        for i, f in enumerate(futures):
            if f.cancel():
                self._draw_block(slot, i)
        for f in futures:
            if not f.cancelled():
                f.result()

    def next(self, prefetch: bool = True) -> tuple[int, np.ndarray]:
        """The next minibatch as ``(slot, array)``; with ``prefetch`` (and a
        pool) the one after it starts drawing in the background."""
        slot = self._slot
        pending = self._pending if self._pending is not None else self._start(slot)
        self._pending = None
        self._finish(pending)
        self._slot = 1 - slot
        if prefetch and self._pool is not None:
            self._pending = self._start(self._slot)
        return slot, self.buffers[slot]

    def close(self) -> None:
        if self._pool is not None:
            try:
                self._finish(self._pending)
            finally:
                self._pending = None
                self._pool.shutdown(wait=True)
                self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise  # otherwise the first error is the one to report
        return False
