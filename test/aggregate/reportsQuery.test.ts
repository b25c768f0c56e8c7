import { describe, expect, it } from 'vitest';
import { parseAggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { BASE_WINDOW_DOC } from '../../src/lib/aggregate/baseWindow.js';
import { createReportsEndpoint, parseReportsQuery } from '../../src/lib/aggregate/reportsQuery.js';
import type { WindowStore } from '../../src/lib/aggregate/windowStore.js';
import { blobWindowStore, memoryWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { RoutingError } from '../../src/lib/errors.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { readReports } from '../../src/lib/aggregate/reports.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';

const parsed = parseAggregationConfig({ windows: ['1m', '1h'] });
if ('errors' in parsed) throw new Error(parsed.errors.join());
const CONFIG = parsed.value;
const NOW = new Date('2024-03-02T12:00:00Z');

function query(params: Record<string, string> | Array<[string, string]>) {
  return parseReportsQuery(Array.isArray(params) ? params : Object.entries(params), CONFIG, NOW);
}

describe('parseReportsQuery', () => {
  it('defaults to the last 24 hours, the smallest window and JSON', () => {
    expect(query({})).toEqual({
      value: { query: { window: CONFIG.windows[0], range: { fromMs: NOW.getTime() - 86_400_000, toMs: NOW.getTime() } }, format: 'json' },
    });
  });

  it('accepts every parameter, a window by any spelling of its size, and ignores the function key', () => {
    expect(query({ deviceId: "pump:7(a)'", from: '2024-03-01', to: '2024-03-01T06:00:00Z', window: '60m', format: 'csv', code: 'k' })).toEqual({
      value: {
        query: { window: CONFIG.windows[1], range: { fromMs: Date.UTC(2024, 2, 1), toMs: Date.UTC(2024, 2, 1, 6) }, deviceId: "pump:7(a)'" },
        format: 'csv',
      },
    });
    expect(query({ from: '2024-03-01' })).toMatchObject({ value: { query: { range: { toMs: Date.UTC(2024, 2, 2) } } } });
  });

  it('reports each bad parameter', () => {
    expect(query([['from', '2024-03-02'], ['to', '2024-03-01'], ['deviceId', 'x'.repeat(129)], ['deviceId', 'y'], ['window', '5m'], ['limit', '3']])).toEqual({
      errors: [
        'deviceId: given more than once',
        'limit: unknown parameter (allowed: deviceId, from, to, window, format)',
        `deviceId: "${'x'.repeat(129)}" is not an IoT Hub device id (1-128 characters: letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ')`,
        'to: must be after from (2024-03-02T00:00:00.000Z)',
        'window: "5m" is not a configured window (1m, 1h)',
      ],
    });
    expect(query({ from: '2024-01-01', to: '2024-02-15' })).toEqual({ errors: ['from/to: at most 31 days apart, got 45 days; split the query'] });
    expect(query({ from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00.001Z' })).toEqual({ errors: ['from/to: at most 31 days apart, got 31 days and 1 s; split the query'] });
    expect(query({ from: '2024-01-01T00:00:00Z', to: '2024-02-01T06:30:00Z' })).toEqual({ errors: ['from/to: at most 31 days apart, got 31 days and 6.5 hours; split the query'] });
  });
});

describe('reading reports', () => {
  const clock = new ManualClock(NOW);

  async function threeWindows() {
    const windows = memoryWindowStore();
    const aggregator = createWindowAggregator({ windows, config: CONFIG, clock });
    const messages = decodeEventHubBatch([0, 1, 2].map((i) => Buffer.from(`{"t":${i}}`)), {
      systemPropertiesArray: [0, 1, 2].map((i) => ({
        'iothub-connection-device-id': 'd',
        'iothub-enqueuedtime': `2024-03-02T10:0${i}:00Z`,
        'content-type': 'application/json',
      })),
    });
    await aggregator.aggregate(messages.map((message) => ({ message, delivered: message, check: { outcome: 'accept', findings: [] }, twinResolved: [] })), '0');
    return windows;
  }

  it('refuses a query that matches more windows than allowed, asking for a narrower one', async () => {
    const windows = await threeWindows();
    expect(await readReports(windows, CONFIG, { window: CONFIG.windows[0]! }, { maxReports: 3 })).toHaveLength(3);
    await expect(readReports(windows, CONFIG, { window: CONFIG.windows[0]! }, { maxReports: 2 })).rejects.toMatchObject({
      code: 'UsageInvalid',
      message: 'more than 2 windows match; narrow the time range, give a device id or choose a larger window',
    });
  });

  it('answers 503 with Retry-After when storage is unavailable, so a client knows to come back', async () => {
    const windows = await threeWindows();
    expect((await createReportsEndpoint({ windows, config: CONFIG, clock })([])).status).toBe(200);
    const failing: WindowStore = {
      ...windows,
      async *list() {
        throw new RoutingError('StorageUnavailable', 'throttled', { retryAfterSeconds: 7 });
      },
    };
    const unavailable = await createReportsEndpoint({ windows: failing, config: CONFIG, clock })([]);
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers['retry-after']).toBe('7');
    expect(JSON.parse(unavailable.body)).toEqual({ error: 'StorageUnavailable', problems: ['throttled'] });
  });

  it('reads the base window record once, but again after a refusal: a record put right needs no restart', async () => {
    const windows = await threeWindows();
    let asked = 0;
    const observed: WindowStore = {
      ...windows,
      get(name, decode) {
        if (name === BASE_WINDOW_DOC) asked++;
        return windows.get(name, decode);
      },
    };
    const movedConfig = parseAggregationConfig({ windows: ['5m', '1h'] });
    if ('errors' in movedConfig) throw new Error(movedConfig.errors.join());
    const endpoint = createReportsEndpoint({ windows: observed, config: movedConfig.value, clock });
    expect((await endpoint([])).status).toBe(503);
    expect((await endpoint([])).status).toBe(503);
    expect(asked).toBe(2);

    // The record put right by hand (every window there was in fact written with this configuration's base).
    await windows.update(BASE_WINDOW_DOC, (record) => ({ ...(record as object), base: '5m' }), (raw) => raw);
    expect((await endpoint([])).status).toBe(200);
    expect((await endpoint([])).status).toBe(200);
    expect(asked).toBe(3);
  });

  it('names a base window record that does not decode, and what to do with it', async () => {
    // Read through the product's blob store, so the record's bytes go through jsonDocuments as on Azure.
    const store = new MemoryBlobStore({ clock });
    await store.ensureContainer('reports');
    for (const body of ['{"kind": "baseWind', '{"kind": "window", "base": 1}']) {
      await store.put('reports', BASE_WINDOW_DOC, Buffer.from(body, 'utf8'));
      const answer = await createReportsEndpoint({ windows: blobWindowStore(store, 'reports'), config: CONFIG, clock })([]);
      expect(answer.status, body).toBe(503);
      expect(JSON.parse(answer.body)).toEqual({
        error: 'Misconfigured',
        problems: [
          `${BASE_WINDOW_DOC} in the reports container (REPORTS_CONTAINER) is not a base window record: restore it, or delete it if ` +
            `every window there was written with this configuration's smallest window (${CONFIG.windows[0]!.label})`,
        ],
      });
    }
  });
});
