/** One benchmark entry: our code against a baseline measured in the same run, on the same machine and data. */
export interface BenchResult {
  name: string;
  /** What `ours` and `baseline` count, e.g. "records/s". Higher is better unless the name says otherwise. */
  unit: string;
  ours: number;
  baseline: number;
  /** ours / baseline. */
  ratio: number;
  /** Extra measurements worth printing (peak memory, storage calls per batch). */
  notes?: Record<string, number | string>;
}

export interface BenchOptions {
  /** Keep the whole run under a minute. */
  quick: boolean;
}

export type BenchEntry = (options: BenchOptions) => Promise<BenchResult[]>;
