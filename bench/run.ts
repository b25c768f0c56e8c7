/**
 * `npm run bench [-- --quick] [-- --json PATH]`: every entry times our code and a baseline in the same process on
 * the same data, so the ratio means something on any machine.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { benchAlerts } from './alerts.js';
import { benchArchiveQuery } from './archiveQuery.js';
import { benchAvroReader } from './avroReader.js';
import { benchBody } from './body.js';
import { benchPipeline } from './pipeline.js';
import type { BenchEntry, BenchResult } from './types.js';

const ENTRIES: Array<[string, BenchEntry]> = [
  ['archive reader', benchAvroReader],
  ['body decoder', benchBody],
  ['telemetry pipeline', benchPipeline],
  ['archive query', benchArchiveQuery],
  ['critical alerts', benchAlerts],
];

function format(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

async function run(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { quick: { type: 'boolean', default: false }, json: { type: 'string' }, only: { type: 'string' } },
  });
  const results: BenchResult[] = [];
  const started = Date.now();
  for (const [label, entry] of ENTRIES) {
    if (values.only !== undefined && !label.includes(values.only)) continue;
    process.stderr.write(`bench: ${label}${values.quick ? ' (quick)' : ''}...\n`);
    for (const result of await entry({ quick: values.quick })) {
      results.push(result);
      const notes = result.notes === undefined ? '' : `  ${Object.entries(result.notes).map(([k, v]) => `${k}=${typeof v === 'number' ? format(v) : v}`).join(' ')}`;
      process.stdout.write(
        `${result.name.padEnd(48)} ours ${format(result.ours).padStart(12)} ${result.unit}  baseline ${format(result.baseline).padStart(12)}  ratio ${result.ratio.toFixed(2)}${notes}\n`,
      );
    }
  }
  process.stdout.write(`${results.length} entries in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify(results, null, 2)}\n`);
}

await run();
