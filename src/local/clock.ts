/**
 * Simulated time for the local runtime. `--speedup K` makes the simulated clock run K times faster than the wall
 * clock, so two simulated minutes of devices, batch frequencies, timers and windows pass in two real seconds at
 * K = 60. Everything time-dependent in the process (devices, endpoints, timers, and the handlers through the
 * Clock port) reads this one clock, so the run is consistent with itself at any speed.
 */
import { systemClock, type Clock } from '../lib/ports.js';

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class SimulatedClock implements Clock {
  readonly startMs: number;
  readonly speedup: number;
  readonly #realStart: number;
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(start: Date | number, speedup: number) {
    if (!(speedup > 0) || !Number.isFinite(speedup)) throw new RangeError(`speedup must be a positive number, got ${speedup}`);
    this.startMs = new Date(start).getTime();
    this.speedup = speedup;
    this.#realStart = performance.now();
  }

  nowMs(): number {
    return this.startMs + (performance.now() - this.#realStart) * this.speedup;
  }

  now(): Date {
    return new Date(Math.floor(this.nowMs()));
  }

  /** Simulated milliseconds since the start. */
  elapsedMs(): number {
    return this.nowMs() - this.startMs;
  }

  /** Real milliseconds that `simulatedMs` take. */
  toRealMs(simulatedMs: number): number {
    return Math.max(0, simulatedMs / this.speedup);
  }

  /** Resolves once the simulated clock reaches `atMs` (never, for Infinity), or at once when `signal` aborts. */
  sleepUntil(atMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer !== undefined) {
          clearTimeout(timer);
          this.#timers.delete(timer);
        }
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const arm = () => {
        if (timer !== undefined) this.#timers.delete(timer);
        const remaining = this.toRealMs(atMs - this.nowMs());
        if (remaining <= 0) return done();
        if (!Number.isFinite(remaining) && signal === undefined) return; // nothing can wake it: never resolves
        // setTimeout holds at most 2^31-1 ms; longer waits re-arm.
        timer = setTimeout(arm, Math.min(remaining, MAX_TIMEOUT_MS));
        this.#timers.add(timer);
      };
      signal?.addEventListener('abort', done, { once: true });
      arm();
    });
  }

  sleep(simulatedMs: number, signal?: AbortSignal): Promise<void> {
    return this.sleepUntil(this.nowMs() + simulatedMs, signal);
  }

  /** Runs `fn` after `simulatedMs`, unless {@link cancelAll} comes first. */
  after(simulatedMs: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, Math.min(this.toRealMs(simulatedMs), MAX_TIMEOUT_MS));
    this.#timers.add(timer);
  }

  /** Pending timers, for a drain that waits for delayed deliveries. */
  get pending(): number {
    return this.#timers.size;
  }

  cancelAll(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

/**
 * Makes the process's clock the simulated one. The function modules build their services with
 * `processServices()`, which uses `systemClock`; the local runtime owns the whole process, so pointing that clock
 * at simulated time is what makes the handlers' windows, budgets and timestamps agree with the devices' enqueued
 * times. Returns the restore function (tests run several runtimes in one worker).
 */
export function installProcessClock(clock: Clock): () => void {
  const original = systemClock.now;
  const target = systemClock as { now: () => Date };
  target.now = () => clock.now();
  return () => {
    target.now = original;
  };
}
