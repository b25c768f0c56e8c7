/**
 * Timer triggers on simulated time: each `app.timer` registration fires at the occurrences of its NCRONTAB schedule
 * (`runOnStartup` fires once at start too), one invocation at a time per function, as the host's singleton lock
 * allows. An occurrence that comes while the previous invocation still runs is skipped and the next one is marked
 * `isPastDue`, as the host reports a late schedule. The function's retry policy applies to a throw.
 */
import type { SimulatedClock } from './clock.js';
import { retryContextFor, retryPolicyOf, type RetryContext } from './invoke.js';
import { parseSchedule, type Schedule } from './ncrontab.js';
import type { Registration } from './registrations.js';
import { timerInput } from './triggers.js';

export interface TimerRun {
  registration: Registration;
  input: unknown;
  retryContext?: RetryContext;
}

export interface TimerSchedulerOptions {
  clock: SimulatedClock;
  registrations: readonly Registration[];
  env: Readonly<Record<string, string | undefined>>;
  invoke(run: TimerRun): Promise<unknown>;
  onError?(registration: Registration, error: unknown, willRetry: boolean): void;
}

export interface ScheduledTimer {
  registration: Registration;
  schedule: Schedule | null;
  /** Why the schedule could not be read; the timer then never fires. */
  problem?: string;
  runs: number;
  failures: number;
}

export class TimerScheduler {
  readonly timers: ScheduledTimer[];
  readonly #options: TimerSchedulerOptions;
  readonly #stop = new AbortController();
  #loops: Promise<void>[] = [];

  constructor(options: TimerSchedulerOptions) {
    this.#options = options;
    this.timers = options.registrations.map((registration) => {
      const raw = String(registration.options['schedule'] ?? '').replace(/%([^%]+)%/g, (_, name: string) => options.env[name] ?? '');
      const parsed = parseSchedule(raw);
      return 'value' in parsed
        ? { registration, schedule: parsed.value, runs: 0, failures: 0 }
        : { registration, schedule: null, problem: parsed.error, runs: 0, failures: 0 };
    });
  }

  start(): void {
    this.#loops = this.timers.filter((t) => t.schedule !== null).map((t) => this.#loop(t));
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#loops);
  }

  async #loop(timer: ScheduledTimer): Promise<void> {
    const { clock } = this.#options;
    const signal = this.#stop.signal;
    const schedule = timer.schedule!;
    let last: Date | null = null;
    let pastDue = false;
    if (timer.registration.options['runOnStartup'] === true) {
      await this.#fire(timer, last, new Date(schedule.next(clock.nowMs())), false);
      last = clock.now();
    }
    while (!signal.aborted) {
      const due = schedule.next(clock.nowMs());
      if (!Number.isFinite(due)) return;
      await clock.sleepUntil(due, signal);
      if (signal.aborted) return;
      const next = new Date(schedule.next(due));
      await this.#fire(timer, last, next, pastDue);
      last = new Date(due);
      pastDue = clock.nowMs() > next.getTime();
    }
  }

  async #fire(timer: ScheduledTimer, last: Date | null, next: Date, isPastDue: boolean): Promise<void> {
    const policy = retryPolicyOf(timer.registration);
    const input = timerInput(last, next, isPastDue);
    let retryContext: RetryContext | undefined;
    for (let attempt = 0; ; attempt++) {
      timer.runs++;
      try {
        await this.#options.invoke({ registration: timer.registration, input, ...(retryContext ? { retryContext } : {}) });
        return;
      } catch (error) {
        timer.failures++;
        const willRetry =
          policy !== null && (policy.maxRetryCount < 0 || attempt < policy.maxRetryCount) && !this.#stop.signal.aborted;
        this.#options.onError?.(timer.registration, error, willRetry);
        if (!willRetry) return;
        retryContext = retryContextFor(policy, attempt + 1, error);
        await this.#options.clock.sleep(policy.delayMs(attempt + 1), this.#stop.signal);
      }
    }
  }
}
