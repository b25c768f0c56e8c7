/**
 * The essential work of issue 4 per message, done by a loop that does nothing else: a second yardstick for the
 * in-memory pipeline, showing how close to the bare JSON.parse loop a ratio can get, measured in the same run.
 * "Essential" under ADR 0007's design, which keeps each window's totals exact as messages arrive; a design that
 * summed at read time instead would save the expansions here (0.1-0.2 µs of the loop's 1.3-1.6 µs per message)
 * and pay with a recomputation per batch (ADR 0007: 7 µs per message for chatty devices).
 *
 * Per message, and nothing else: read the device id, message id and enqueued time from the system properties (one
 * pass, exact key names, the three fields only), parse the time, scan the body's top-level numbers with our scanner
 * (faster than JSON.parse: the body bench's numbers-only entry), find the device's window, look its identity up in
 * the window's list, keep the contribution, and add every value exactly (Σx and Σx² as expansions: reports must be
 * byte-identical in any arrival order, so plain `+=` is not allowed). Every window is kept, as the in-memory window
 * store keeps every document.
 *
 * Left out, although the pipeline must do them: the message model (contentType, properties, source), the checks and
 * their outcomes, counts by level, outcome and reason, min/max/first/last ties, roll-up windows, the watermark and
 * lateness, bad input of any kind. So the pipeline can only be slower than this loop; if this loop is below a
 * target ratio, no implementation of this design reaches it on the same machine.
 */
import { addSquareTo, addTo, squareExpansion, valueExpansion, type Expansion } from '../src/lib/aggregate/exactSum.js';
import { scanTopLevelNumbers } from '../src/lib/message/jsonScan.js';
import { parseEnqueuedTime } from '../src/lib/message/normalize.js';

export interface FloorBatch {
  messages: Buffer[];
  triggerMetadata: Record<string, unknown>;
}

interface FloorField {
  count: number;
  sum: Expansion;
  squares: Expansion;
}

export interface FloorWindow {
  startMs: number;
  ids: string[];
  contributions: Array<{ t: number; values: readonly number[] }>;
  fields: Map<string, FloorField>;
}

/**
 * Messages per second through the essential loop, the messages it counted and the windows it kept, by device (so
 * that what it did can be compared with the pipeline's: test/bench/pipelineFloor.test.ts).
 */
export function runFloor(
  batches: readonly FloorBatch[],
  baseWindowMs: number,
): { rate: number; windows: number; counted: number; kept: ReadonlyMap<string, readonly FloorWindow[]> } {
  const started = process.hrtime.bigint();
  const byDevice = new Map<string, FloorWindow[]>();
  let windows = 0;
  let counted = 0;
  for (const batch of batches) {
    const system = batch.triggerMetadata['systemPropertiesArray'] as ReadonlyArray<Record<string, unknown>>;
    for (let i = 0; i < batch.messages.length; i++) {
      const properties = system[i]!;
      let deviceId: unknown;
      let messageId: unknown;
      let enqueued: unknown;
      for (const key in properties) {
        if (key === 'iothub-connection-device-id') deviceId = properties[key];
        else if (key === 'message-id') messageId = properties[key];
        else if (key === 'iothub-enqueuedtime') enqueued = properties[key];
      }
      const time = parseEnqueuedTime(enqueued)!.getTime();
      const body = batch.messages[i]!;
      const numbers = scanTopLevelNumbers(body, 0, body.length)!;
      const startMs = Math.floor(time / baseWindowMs) * baseWindowMs;
      let list = byDevice.get(deviceId as string);
      if (list === undefined) {
        list = [];
        byDevice.set(deviceId as string, list);
      }
      let window = list[list.length - 1];
      if (window === undefined || window.startMs !== startMs) {
        window = list.find((w) => w.startMs === startMs);
        if (window === undefined) {
          window = { startMs, ids: [], contributions: [], fields: new Map() };
          list.push(window);
          windows++;
        }
      }
      const identity = `id:${messageId as string}`;
      if (window.ids.includes(identity)) continue;
      window.ids.push(identity);
      window.contributions.push({ t: time, values: numbers.values });
      counted++;
      for (let f = 0; f < numbers.names.length; f++) {
        const name = numbers.names[f]!;
        const x = numbers.values[f]!;
        const field = window.fields.get(name);
        if (field === undefined) {
          window.fields.set(name, { count: 1, sum: valueExpansion(x), squares: squareExpansion(x) });
        } else {
          field.count++;
          addTo(field.sum, x);
          addSquareTo(field.squares, x);
        }
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { rate: counted / seconds, windows, counted, kept: byDevice };
}
