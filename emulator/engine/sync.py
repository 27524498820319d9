"""Synchronisation primitives for actors: SpinLock, Mutex, WaitQueue, Completion.

All of them order their operations in global virtual time through :meth:`Sim.sync` and block
through :meth:`Sim.block`/:meth:`Sim.make_ready`, so they inherit the engine's determinism and
the strategy's control over ties. Lock statistics are kept in /proc/lock_stat terms
(:class:`LockStats`).

Lookahead detail worth knowing: *releasing* a lock does not synchronise. The lock remembers the
virtual time it became free (``free_at``); an acquirer that is processed later but whose clock is
earlier spins until ``free_at``, exactly as it would have queued behind the holder. FIFO hand-off
to a queued waiter happens at the release time. The result equals that of a synchronised release
while saving one task switch per critical section.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulator.engine.errors import PrimitiveMisuse

if TYPE_CHECKING:
    from emulator.engine.actor import Actor
    from emulator.engine.sim import Sim

__all__ = ["Completion", "LockStats", "Mutex", "SpinLock", "WaitQueue"]

_heappush = heapq.heappush


class LockStats:
    """Statistics of one lock class, as lockdep's ``struct lock_class_stats`` keeps them.

    Times are virtual ns. ``contentions`` counts acquisitions that had to wait (lockdep's
    ``waittime.nr``), ``acquisitions`` all acquisitions (``holdtime.nr``). Bounces count events
    where the previous acquirer was another actor (lockdep: another CPU). ``contention_points``
    counts waits by the waiter's call site, ``contending_points`` by the holder's call site.
    ``trylock_failures`` counts failed ``try_acquire`` calls (lockdep does not count those).
    """

    __slots__ = (
        "acq_bounces",
        "acquisitions",
        "con_bounces",
        "contending_points",
        "contention_points",
        "contentions",
        "hold_max",
        "hold_min",
        "hold_total",
        "name",
        "trylock_failures",
        "wait_max",
        "wait_min",
        "wait_total",
    )

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: a class
        # compiled with mypyc (emulator.native) runs ``__init__`` when it is unpickled
        return (type(self), (self.name,), self.__getstate__())

    def __init__(self, name: str) -> None:
        self.name = name
        self.contentions = 0
        self.con_bounces = 0
        self.wait_min = 0
        self.wait_max = 0
        self.wait_total = 0
        self.acquisitions = 0
        self.acq_bounces = 0
        self.hold_min = 0
        self.hold_max = 0
        self.hold_total = 0
        self.trylock_failures = 0
        self.contention_points: Counter[str] = Counter()
        self.contending_points: Counter[str] = Counter()

    def _wait(self, ns: int, site: str, holder_site: str) -> None:
        if self.contentions == 0 or ns < self.wait_min:
            self.wait_min = ns
        if ns > self.wait_max:
            self.wait_max = ns
        self.contentions += 1
        self.con_bounces += 1
        self.wait_total += ns
        self.contention_points[site] += 1
        self.contending_points[holder_site] += 1

    def _hold(self, ns: int) -> None:
        if self.acquisitions == 0 or ns < self.hold_min:
            self.hold_min = ns
        if ns > self.hold_max:
            self.hold_max = ns
        self.acquisitions += 1
        self.hold_total += ns

    @property
    def wait_avg(self) -> int:
        return self.wait_total // self.contentions if self.contentions else 0

    @property
    def hold_avg(self) -> int:
        return self.hold_total // self.acquisitions if self.acquisitions else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "con-bounces": self.con_bounces,
            "contentions": self.contentions,
            "waittime-min": self.wait_min,
            "waittime-max": self.wait_max,
            "waittime-total": self.wait_total,
            "waittime-avg": self.wait_avg,
            "acq-bounces": self.acq_bounces,
            "acquisitions": self.acquisitions,
            "holdtime-min": self.hold_min,
            "holdtime-max": self.hold_max,
            "holdtime-total": self.hold_total,
            "holdtime-avg": self.hold_avg,
            "trylock-failures": self.trylock_failures,
            "contention-points": dict(self.contention_points.most_common()),
            "contending-points": dict(self.contending_points.most_common()),
        }


class SpinLock:
    """A kernel queued spinlock (qspinlock): FIFO hand-off, trylock, spinning waiters.

    Models include/linux/spinlock.h: spin_lock / spin_unlock / spin_trylock with the fairness
    of kernel/locking/qspinlock.c (MCS queue: waiters get the lock in arrival order). A waiter
    spins, so its CPU is busy for the whole wait (counted in ``actor.spin_ns``). Simplifies:
    no irq-disabling, no paravirt; the cost of the atomic itself is the model's to charge.

    ``site`` names the call site (e.g. ``"rmqueue_bulk"``) for the contention tables.
    """

    #: lock_stat's "-W" vs plain naming: spinlocks print a single line per class
    kind = "spinlock"
    #: include/trace/events/lock.h contention_begin flags (LCB_F_SPIN; a mutex: LCB_F_MUTEX)
    lcb_flags = 1

    #: Optional event hook, off by default (None: one attribute test per operation). Set to a
    #: recorder to emit include/trace/events/lock.h events for this lock: ``contention_begin``
    #: (lock_addr, flags) and ``contention_end`` (lock_addr, ret) around a wait, and lockdep's
    #: ``lock_acquired`` / ``lock_release`` (name, lock_addr) when taken and dropped.
    #: ``lock_addr`` is :attr:`addr` (a stable label standing for the kernel's pointer).
    rec: Any = None
    addr = ""
    #: with the hook on, whether it also reports holds (lock_acquired / lock_release)
    rec_holds = True

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: a class
        # compiled with mypyc (emulator.native) runs ``__init__`` when it is unpickled
        return (type(self), (self.sim, self.name), self.__getstate__())

    def __init__(self, sim: Sim, name: str) -> None:
        self.sim = sim
        self.name = name
        self.holder: Actor | None = None
        self.holder_site = ""
        self.acquired_at = 0
        self.free_at = 0
        self._last: Actor | None = None
        self._waiters: deque[tuple[Actor, int, str]] = deque()
        self.stats = LockStats(name)
        self.addr = name

    def traced(self, rec: Any, addr: str, holds: bool = True) -> None:
        """Turn on the lock.h event hook (see :attr:`rec`) with ``addr`` as the lock's label;
        ``holds=False`` reports only waits (contention_begin / contention_end)."""
        self.rec = rec
        self.addr = addr
        self.rec_holds = holds

    @property
    def waiters(self) -> int:
        return len(self._waiters)

    def is_locked(self) -> bool:
        """Whether held at the caller's virtual time (spin_is_locked; racy, like the kernel)."""
        me = self.sim._current
        return self.holder is not None or (me is not None and self.free_at > me.now)

    def _take(self, me: Actor, site: str) -> None:
        if self.rec is not None and self.rec_holds and me is self.sim._current:
            self.rec.emit("lock_acquired", name=self.name, lock_addr=self.addr)
        self.holder = me
        self.holder_site = site
        self.acquired_at = me.now
        if self._last is not None and self._last is not me:
            self.stats.acq_bounces += 1
        self._last = me

    async def acquire(self, site: str = "") -> None:
        """spin_lock: take the lock, spinning (in virtual time) behind earlier arrivals."""
        sim = self.sim
        me = sim._current
        if me is None:
            raise PrimitiveMisuse(f"{self.name}: acquire() outside an actor")
        aw = sim._sync_step()  # sim.sync(), one coroutine frame less
        if aw is not None:
            await aw
        holder = self.holder
        if holder is None:
            wait = self.free_at - me.now
            rec = self.rec
            if wait > 0:
                self.stats._wait(wait, site, self.holder_site)
                if rec is not None:
                    rec.emit("contention_begin", lock_addr=self.addr, flags=self.lcb_flags)
                me.now = self.free_at
                me.spin_ns += wait
                if rec is not None:
                    rec.emit("contention_end", lock_addr=self.addr, ret=0)
            if rec is not None:
                self._take(me, site)
                return
            # _take without the event hook, inline
            self.holder = me
            self.holder_site = site
            self.acquired_at = me.now
            last = self._last
            if last is not me:
                if last is not None:
                    self.stats.acq_bounces += 1
                self._last = me
            return
        if holder is me:
            raise PrimitiveMisuse(
                f"actor {me.name!r} acquires {self.name} at t={me.now} ns but already holds it "
                f"(taken at t={self.acquired_at} ns from {self.holder_site or '?'})"
            )
        since = me.now
        self._waiters.append((me, since, site))
        holder_site = self.holder_site
        rec = self.rec
        if rec is not None:
            rec.emit("contention_begin", lock_addr=self.addr, flags=self.lcb_flags)
        aw = sim._block_step(self)  # sim.block(self), one coroutine frame less
        if aw is not None:
            await aw
        if rec is not None:
            rec.emit("contention_end", lock_addr=self.addr, ret=0)
            if self.rec_holds:
                rec.emit("lock_acquired", name=self.name, lock_addr=self.addr)
        wait = me.now - since
        self.stats._wait(wait, site, holder_site)
        me.spin_ns += wait

    async def try_acquire(self, site: str = "") -> bool:
        """spin_trylock: take the lock if it is free at the caller's virtual time."""
        if self.sim._current is None:
            raise PrimitiveMisuse(f"{self.name}: try_acquire() outside an actor")
        aw = self.sim._sync_step()
        if aw is not None:
            await aw
        return self.try_acquire_now(site)

    def try_acquire_now(self, site: str = "") -> bool:
        """spin_trylock for a caller that has *just* synchronised at its current time.

        Same result as :meth:`try_acquire` without a second synchronisation: model code that
        already called :meth:`Sim.sync` at this instant (e.g. on entry to an allocation) uses it
        to avoid paying for the same ordering twice.
        """
        me = self.sim._current
        if me is None:
            raise PrimitiveMisuse(f"{self.name}: try_acquire_now() outside an actor")
        if self.sim.strict:
            self.sim.assert_synchronised(f"try_acquire_now({self.name})")
        if self.holder is None and self.free_at <= me.now:
            self._take(me, site)
            return True
        if self.holder is me:
            raise PrimitiveMisuse(
                f"actor {me.name!r} try_acquires {self.name} at t={me.now} ns but already holds it"
            )
        self.stats.trylock_failures += 1
        return False

    def release(self) -> None:
        """spin_unlock: hand the lock to the first waiter (FIFO) or mark it free from now."""
        sim = self.sim
        me = sim._current
        if me is None or self.holder is not me:
            who = me.name if me is not None else "no actor"
            held = self.holder.name if self.holder is not None else "nobody"
            t = me.now if me is not None else sim.now
            raise PrimitiveMisuse(
                f"actor {who!r} releases {self.name} at t={t} ns but it is held by {held}"
            )
        t = me.now
        # stats._hold, inline
        st = self.stats
        ns = t - self.acquired_at
        if ns < st.hold_min or st.acquisitions == 0:
            st.hold_min = ns
        if ns > st.hold_max:
            st.hold_max = ns
        st.acquisitions += 1
        st.hold_total += ns
        if self.rec is not None and self.rec_holds:
            self.rec.emit("lock_release", name=self.name, lock_addr=self.addr)
        if self._waiters:
            waiter, _since, site = self._waiters.popleft()
            sim.make_ready(waiter, t)
            self._take(waiter, site)
        else:
            self.holder = None
            self.free_at = t

    def describe_wait(self, actor: Actor) -> str:
        holder = self.holder.name if self.holder is not None else "nobody"
        return f"{self.kind} {self.name} (held by {holder})"

    async def __aenter__(self) -> SpinLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Mutex(SpinLock):
    """A sleeping lock (kernel/locking/mutex.c): like :class:`SpinLock` but a waiter sleeps,
    so its wait counts as ``sleep_ns`` rather than busy spinning. Used for e.g.
    ``pcpu_drain_mutex``. Simplifies: no optimistic spinning, strict FIFO hand-off."""

    kind = "mutex"
    lcb_flags = 32  # LCB_F_MUTEX

    async def acquire(self, site: str = "") -> None:
        me = self.sim.current
        spun = me.spin_ns
        await super().acquire(site)
        me.sleep_ns += me.spin_ns - spun
        me.spin_ns = spun


class _Wait:
    """One waiter on a wait queue; also its timeout timer in the engine's heap."""

    __slots__ = ("active", "actor", "queue")

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: a class
        # compiled with mypyc (emulator.native) runs ``__init__`` when it is unpickled
        return (type(self), (self.actor, self.queue), self.__getstate__())

    def __init__(self, actor: Actor, queue: WaitQueue) -> None:
        self.actor = actor
        self.queue = queue
        self.active = True

    def on_timeout(self) -> None:
        # leave the queue now: a waiter that keeps timing out on a queue nobody wakes would
        # otherwise pile up one stale entry per wait (the queue holds few live waiters)
        self.queue._waiters.remove(self)
        self.actor.woken = False
        self.actor.blocked_on = None
        self.actor.sleep_ns += self.actor.now - self.actor.blocked_since


class WaitQueue:
    """A kernel wait queue (wait_event_timeout / wake_up): waiters sleep until woken or timed out.

    Models include/linux/wait.h. Waiters are woken in FIFO order.

    Rule for a wake-up at exactly the timeout instant: **the wake-up wins**. Timers sort after
    every actor step of the same virtual instant, so ``wake_up`` at time ``T`` reaches a waiter
    whose timeout is ``T`` first and ``wait`` returns True (woken). This matches the kernel's
    ``wait_event_timeout`` returning non-zero when the condition became true as the timer ran
    out.
    """

    #: how a deadlock report names it (a Completion's inner queue says "completion")
    kind = "waitqueue"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: a class
        # compiled with mypyc (emulator.native) runs ``__init__`` when it is unpickled
        return (type(self), (self.sim, self.name), self.__getstate__())

    def __init__(self, sim: Sim, name: str) -> None:
        self.sim = sim
        self.name = name
        self._waiters: deque[_Wait] = deque()

    def __len__(self) -> int:
        return sum(1 for w in self._waiters if w.active)

    async def wait(
        self, timeout_ns: int | None = None, until: Callable[[], bool] | None = None
    ) -> bool:
        """Sleep until woken (returns True) or until ``timeout_ns`` passes (returns False).

        ``until`` is tested once the caller is ordered in time, just before it would sleep
        (the condition check after ``prepare_to_wait`` in ``wait_event``): if true, ``wait``
        returns True at once. A waker that ran while the caller was synchronising, and found
        nobody on the queue, is thus not missed if it left a mark ``until`` reads."""
        sim = self.sim
        me = sim._current
        if me is None:
            raise PrimitiveMisuse(f"{self.name}: wait() outside an actor")
        if timeout_ns is not None and (timeout_ns.__class__ is not int or timeout_ns < 0):
            raise PrimitiveMisuse(
                f"actor {me.name!r}: {self.name}.wait(timeout_ns={timeout_ns!r}) at t={me.now} ns:"
                " need None or a non-negative int of ns"
            )
        aw = sim._sync_step()  # sim.sync(), one coroutine frame less
        if aw is not None:
            await aw
        if until is not None and until():
            return True
        if timeout_ns is not None:
            at = me.now + timeout_ns
            if sim.sleep_through(at):
                # nobody can act before the timeout: it times out with nothing else happening
                # (the cheap "wait until t unless woken" of an idle CPU)
                me.sleep_ns += timeout_ns
                me.woken = False
                return False
            w = _Wait(me, self)
            self._waiters.append(w)
            sim._seq += 1  # sim.push_timer(at, w), inline
            _heappush(sim._heap, ((at << 1) | 1, sim._seq, w))
            me.timed = True
        else:
            w = _Wait(me, self)
            self._waiters.append(w)
        aw = sim._block_step(self)  # sim.block(self), one coroutine frame less
        if aw is not None:
            await aw
        return me.woken

    async def wake_up(self, n: int = 1) -> int:
        """Wake up to ``n`` waiters (FIFO); returns how many were woken."""
        sim = self.sim
        me = sim._current
        if me is None:
            raise PrimitiveMisuse(f"{self.name}: wake_up() outside an actor")
        await sim.sync()
        return self._wake(me.now, n)

    def wake_up_now(self, n: int = 1) -> int:
        """wake_up for a caller that has *just* synchronised (like
        :meth:`SpinLock.try_acquire_now`): synchronous, for wake-ups issued from non-async
        model code at an instant the caller already ordered. Returns how many were woken."""
        sim = self.sim
        me = sim._current
        if me is None:
            raise PrimitiveMisuse(f"{self.name}: wake_up_now() outside an actor")
        if sim.strict:
            sim.assert_synchronised(f"wake_up_now({self.name})")
        return self._wake(me.now, n)

    async def wake_up_all(self) -> int:
        """Wake every waiter; returns how many were woken."""
        return await self.wake_up(1 << 62)

    def _wake(self, t: int, n: int) -> int:
        woken = 0
        waiters = self._waiters
        while waiters and woken < n:
            w = waiters.popleft()
            if not w.active:
                continue
            w.active = False
            a = w.actor
            a.woken = True
            self.sim.make_ready(a, t)
            # after make_ready: with a sync quantum the waiter may have blocked at a later
            # clock than the waker's, and it resumes at its own clock (never goes back)
            a.sleep_ns += a.now - a.blocked_since
            woken += 1
        return woken

    def describe_wait(self, actor: Actor) -> str:
        return f"{self.kind} {self.name}"


class Completion:
    """struct completion (kernel/sched/completion.c): ``complete`` releases one waiter (or
    banks the release), ``complete_all`` releases every present and future waiter."""

    _ALL = 1 << 62

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: a class
        # compiled with mypyc (emulator.native) runs ``__init__`` when it is unpickled
        return (type(self), (self.sim, self.name), self.__getstate__())

    def __init__(self, sim: Sim, name: str) -> None:
        self.sim = sim
        self.name = name
        self.done = 0
        self._queue = WaitQueue(sim, name)
        self._queue.kind = "completion"  # waiters block on the queue: report the completion

    async def wait(self, timeout_ns: int | None = None) -> bool:
        """wait_for_completion(_timeout): True once completed, False on timeout."""
        await self.sim.sync()
        if self.done:
            if self.done != self._ALL:
                self.done -= 1
            return True
        return await self._queue.wait(timeout_ns)

    async def complete(self) -> None:
        await self.sim.sync()
        if self.done != self._ALL and self._queue._wake(self.sim.current.now, 1) == 0:
            self.done += 1

    async def complete_all(self) -> None:
        await self.sim.sync()
        self.done = self._ALL
        self._queue._wake(self.sim.current.now, self._ALL)

    def reinit(self) -> None:
        self.done = 0

    def describe_wait(self, actor: Actor) -> str:
        return f"completion {self.name}"
