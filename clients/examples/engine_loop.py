#!/usr/bin/env python3
"""engine_loop.py - a minimal trading engine loop using breaker_client.

Attach read-only, resolve the strategy once, then before EVERY simulated
order ask check_live() (fails closed: a dead daemon or unknown layout reads
HALTED) and act on the answer:
  HALTED       send nothing new, cancel every working order
  REDUCE_ONLY  only orders that bring the position towards zero
  CAUTIOUS     new orders at the breaker's published size factor (a
               quarter, our own convention, if it publishes none)
  ACTIVE       normal
In every mode, orders are sized by the limits the breaker publishes
(limits(): size factor, max order quantity and notional), re-read whenever
its change sequence moves.
Every mode change is printed with the reason the breaker gives (or "not
live" when the daemon's heartbeat is stale). Same behaviour and output as
engine_loop.c.

It also writes its telemetry (attach_telemetry, read-write), which the
daemon's rules judge on every tick: a heartbeat every iteration (the
dead-man switch: stop beating and the strategy trips stale_heartbeat), every
order sent and every cancel, every fill with the cash balance and position
after it (the simulated venue fills at a fixed price), marks, and an ack of
every change_seq it has acted on, which `breaker status` shows per trip.

usage: engine_loop.py [--instance NAME] [--strategy NAME] [--seconds S]
                      [--iterations N] [--interval-us U]
exit: 0 after the bounded run; 1 cannot attach (state or telemetry segment)
      or unknown layout; 2 strategy not registered (refuses to trade) or
      bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

try:
    import breaker_client as bk
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import breaker_client as bk

BASE_SIZE = 100
MAX_WORKING = 8
PRICE = 10.0  # the simulated venue fills everything at this price...
FEE_RATE = 0.01  # ...for this fee per unit
OPENING_BALANCE = 1_000_000.0
LIMIT_SIZE_FACTOR = 0x1  # Limits.flags: a size factor is published (docs/shm-layout.md)


@dataclass
class Engine:
    tel: bk.Telemetry
    slot: int
    position: int = 0
    balance: float = OPENING_BALANCE
    working: list[int] = field(default_factory=list)  # signed quantities
    sent: int = 0
    cancelled: int = 0
    skipped: int = 0
    lim: bk.Limits | None = None  # the breaker's limits, as of the last change

    def sized(self, mode: bk.Mode, want: int) -> int:
        """An order's size under the breaker's limits: its size factor (in
        CAUTIOUS without one, our own quarter), then max quantity and notional."""
        lim = self.lim
        if lim is not None and lim.flags & LIMIT_SIZE_FACTOR:
            f = lim.size_factor
        else:
            f = 0.25 if mode is bk.Mode.CAUTIOUS else 1.0
        q = abs(want) * f
        if lim is not None and lim.max_qty is not None and q > lim.max_qty:
            q = lim.max_qty
        if lim is not None and lim.max_notional is not None and q * PRICE > lim.max_notional:
            q = lim.max_notional / PRICE
        return -int(q) if want < 0 else int(q)

    def exposure(self) -> int:
        """Position once every working order fills."""
        return self.position + sum(self.working)

    def fill_one(self) -> None:
        """The simulated exchange fills the oldest working order."""
        if self.working:
            qty = self.working.pop(0)
            self.position += qty
            cash, fee = -qty * PRICE, abs(qty) * FEE_RATE
            self.balance += cash - fee
            # one fill: its cash and fee, and the balance and position after it, together
            self.tel.fill(self.slot, cash, fee, self.balance, self.position * PRICE)
            notional = self.position * PRICE
            self.tel.marks(self.slot, notional, abs(notional), self.balance + notional - OPENING_BALANCE)

    def cancel_all(self) -> int:
        """Cancels are always allowed, in every mode."""
        n = len(self.working)
        self.cancelled += n
        self.working.clear()
        if n:
            self.tel.report_cancel(self.slot, n)
        return n

    def cancel_increasing(self) -> int:
        """Going reduce-only: cancel working orders that would grow the position."""
        keep = [q for q in self.working if self.position != 0 and (q > 0) != (self.position > 0)]
        n = len(self.working) - len(keep)
        self.working = keep
        self.cancelled += n
        if n:
            self.tel.report_cancel(self.slot, n)
        return n

    def send(self, qty: int) -> None:
        if len(self.working) == MAX_WORKING:
            self.fill_one()
        self.working.append(qty)
        self.sent += 1
        self.tel.report_order(self.slot)


def wanted_qty(i: int) -> int:
    """What the strategy would like to do on iteration i: a simple oscillation."""
    return BASE_SIZE if (i // 4) % 2 == 0 else -BASE_SIZE


def trade(e: Engine, mode: bk.Mode, i: int) -> None:
    want = wanted_qty(i)
    if mode is bk.Mode.HALTED:
        e.skipped += 1
        return
    if mode is bk.Mode.REDUCE_ONLY:
        # only towards flat, and never past it (counting working orders)
        x = e.exposure()
        if x == 0 or (x > 0) == (want > 0):
            e.skipped += 1
            return
        if abs(x) < abs(want):
            want = -x
    want = e.sized(mode, want)
    if want == 0:  # a size factor or limit of 0: nothing to send
        e.skipped += 1
        return
    e.send(want)


def report_mode(c: bk.Client, slot: int, mode: bk.Mode, dead: bool, e: Engine) -> None:
    if dead:
        print(f"mode HALTED (breakerd not live: fail closed): stop sending, "
              f"cancelled {e.cancel_all()} working orders", flush=True)
        return
    r = c.reason(slot)
    held = f" group={r.scope_name}" if r.scope == "group" else ""  # held by a group it is in
    head = f"mode {mode.name} reason={r.reason} uid={r.actor_uid}{held}: "
    if mode is bk.Mode.HALTED:
        action = f"stop sending, cancelled {e.cancel_all()} working orders"
    elif mode is bk.Mode.REDUCE_ONLY:
        n = e.cancel_increasing()
        action = f"reducing orders only, cancelled {n} increasing orders (position {e.position})"
    elif mode is bk.Mode.CAUTIOUS:
        action = f"size {e.sized(mode, BASE_SIZE)} (of {BASE_SIZE})"
    else:
        action = f"normal trading, size {e.sized(mode, BASE_SIZE)}"
    print(head + action, flush=True)


def attach(instance: str) -> bk.Client | None:
    """The daemon may still be creating the segment: retry for 2 s."""
    err: Exception | None = None
    for _ in range(200):
        try:
            return bk.attach(instance)
        except (bk.NotReadyError, FileNotFoundError) as ex:
            err = ex
            time.sleep(0.01)
        except bk.LayoutError as ex:
            print(f"breaker instance {instance}: unknown segment layout: refusing to trade "
                  f"(fail closed): {ex}", file=sys.stderr)
            return None
        except OSError as ex:
            err = ex
            break
    print(f"breaker instance {instance}: cannot attach: {err}: refusing to trade", file=sys.stderr)
    return None


def attach_telemetry(instance: str) -> bk.Telemetry | None:
    """The telemetry segment, read-write; retried for 2 s like the state segment.

    Without it the daemon's rules cannot watch this engine (no heartbeat, no
    reject rate, no balance check): the example refuses to trade."""
    err: Exception | None = None
    for _ in range(200):
        try:
            return bk.attach_telemetry(instance)
        except (bk.NotReadyError, FileNotFoundError) as ex:
            err = ex
            time.sleep(0.01)
        except (bk.BreakerError, OSError) as ex:  # LayoutError, PermissionError (not in the group)
            err = ex
            break
    print(f"breaker instance {instance}: cannot attach telemetry: {err}: refusing to trade",
          file=sys.stderr)
    return None


def run(c: bk.Client, tel: bk.Telemetry, slot: int, seconds: float, iterations: int,
        interval_us: int) -> None:
    e = Engine(tel, slot)
    prev = tel.read(slot)
    if prev.fills:
        # an earlier run of this strategy reported fills: the (simulated) account
        # carries on from its balance, so balance conservation still holds
        e.balance = prev.balance
    else:
        tel.opening_balance(slot, e.balance)  # the base of balance conservation
    tel.session(slot, True)  # the simulated venue's order-entry session is up
    acked: int | None = None
    last: bk.Mode | None = None
    last_dead = False
    end = time.monotonic() + seconds
    i = 0
    while (not iterations or i < iterations) and time.monotonic() < end:
        tel.heartbeat(slot)  # alive: the daemon's dead-man switch
        seen = c.change_seq()
        # before every order: the breaker's answer, failing closed
        mode = c.check_live(slot)
        # HALTED only because breakerd is not live (off the fast path)
        dead = mode is bk.Mode.HALTED and c.check(slot) is not bk.Mode.HALTED
        # the limits change with the mode (or a reload): re-read them when the
        # breaker says something changed
        if seen != acked:
            e.lim = c.limits(slot)
        if mode is not last or dead != last_dead:
            report_mode(c, slot, mode, dead, e)
        last, last_dead = mode, dead
        trade(e, mode, i)
        if i % 3 == 0:  # the simulated venue fills slower than we send
            e.fill_one()
        # the venue's view, every iteration: a market-data tick arrived, and
        # what is working now (after a halt, what `breaker status` confirms
        # "flat" from)
        tel.md_tick(slot)
        tel.working(slot, len(e.working))
        if seen != acked:
            # acted (above) on a state at least as new as change_seq `seen`:
            # say so, and `breaker status` counts this engine as having acked
            tel.ack(slot, seen)
            acked = seen
        if mode is bk.Mode.HALTED:
            # nothing to send: sleep until the breaker publishes a change
            # (bounded, to keep checking the daemon's heartbeat)
            c.wait_change(seen, timeout=0.1)
        elif interval_us:
            time.sleep(interval_us / 1e6)
        i += 1
    print(f"done: iterations {i}, sent {e.sent}, held back {e.skipped}, "
          f"cancelled {e.cancelled}, position {e.position}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="minimal engine loop checking the breaker before every order")
    ap.add_argument("--instance", default="default")
    ap.add_argument("--strategy", default="momo-eu-1")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--iterations", type=int, default=0)
    ap.add_argument("--interval-us", type=int, default=1000)
    args = ap.parse_args(argv)
    c = attach(args.instance)
    if c is None:
        return 1
    with c:
        try:
            slot = c.resolve(args.strategy)
        except KeyError:
            print(f"strategy {args.strategy} is not registered with breaker instance "
                  f"{args.instance}: refusing to trade", file=sys.stderr)
            return 2
        tel = attach_telemetry(args.instance)
        if tel is None:
            return 1
        with tel:
            print(f"engine: instance {args.instance} strategy {args.strategy} slot {slot}", flush=True)
            run(c, tel, slot, args.seconds, args.iterations, args.interval_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
