import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blobTimeWindow,
  listArchiveBlobs,
  nameMinuteWindow,
  parseFileNameFormat,
  type FileNameFormat,
} from '../../src/lib/archive/fileNameFormat.js';
import type { BlobItem, BlobPrefix, BlobStore, HierarchyListOptions, ListOptions } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { blobNameFor } from '../support/archiveFixtures.js';

function format(source: string): FileNameFormat {
  const parsed = parseFileNameFormat(source);
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

const DEFAULT = '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}';
const MINUTE = 60_000;

describe('parseFileNameFormat', () => {
  it('accepts the default and reordered, suffixed formats', () => {
    for (const source of [DEFAULT, '{YYYY}/{MM}/{DD}/{HH}/{mm}/{iothub}/{partition}', `${DEFAULT}.json`, 'x/{iothub}-{partition}/{DD}{MM}{YYYY}{HH}{mm}.avro']) {
      expect(parseFileNameFormat(source)).toHaveProperty('value');
    }
  });

  it('reports every problem IoT Hub would reject, at once', () => {
    const result = parseFileNameFormat('{iothub}/{iothub}/{YYYY}/{MM}/{dd}/{HH}');
    expect(result).toEqual({
      errors: [
        expect.stringContaining('unknown token {dd}'),
        expect.stringMatching(/missing \{partition\} \{DD\} \{mm\}/),
        expect.stringContaining('{iothub} appears 2 times'),
      ],
    });
    expect(parseFileNameFormat('/{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}')).toEqual({
      errors: [expect.stringContaining('leading slash')],
    });
    expect(parseFileNameFormat(`${DEFAULT}}`)).toEqual({ errors: [expect.stringContaining('unbalanced brace')] });
  });
});

describe('FileNameFormat.parse', () => {
  it('reads hub, partition as written (0 or 00) and the minute', () => {
    const f = format(DEFAULT);
    expect(f.parse('hub/00/2024/05/01/12/07')).toEqual({ iothub: 'hub', partition: '00', minuteMs: Date.UTC(2024, 4, 1, 12, 7) });
    expect(f.parse('hub/3/2024/05/01/12/07')?.partition).toBe('3');
  });

  it('rejects names that do not follow the format or name impossible times', () => {
    const f = format(`${DEFAULT}.json`);
    expect(f.parse('hub/0/2024/05/01/12/07')).toBeNull(); // suffix missing
    expect(f.parse('hub/0/2024/02/30/12/07.json')).toBeNull();
    expect(f.parse('hub/0/2024/13/01/12/07.json')).toBeNull();
    expect(f.parse('hub/0/2024/05/01/24/07.json')).toBeNull();
    expect(f.parse('hub/x/2024/05/01/12/07.json')).toBeNull();
    expect(f.parse('hub/0/2024/05/01/12/07.json/extra')).toBeNull();
  });

  it('round-trips any reordering of the tokens (property)', () => {
    const tokens = ['{iothub}', '{partition}', '{YYYY}', '{MM}', '{DD}', '{HH}', '{mm}'];
    fc.assert(
      fc.property(
        fc.shuffledSubarray(tokens, { minLength: 7, maxLength: 7 }),
        fc.constantFrom('/', '-', '_'),
        fc.constantFrom('', '.json', '.avro'),
        fc.integer({ min: Date.UTC(2000, 0, 1) / MINUTE, max: Date.UTC(2099, 11, 31) / MINUTE }),
        fc.constantFrom('0', '00', '1', '17', '127'),
        (order, separator, suffix, minute, partition) => {
          const source = order.join(separator) + suffix;
          const f = format(source);
          const name = blobNameFor(source, { iothub: 'my-hub', partition, minute: minute * MINUTE });
          const parsed = f.parse(name);
          expect(parsed?.minuteMs).toBe(minute * MINUTE);
          expect(parsed?.partition).toBe(partition);
          expect(f.format({ iothub: 'my-hub', partition, minute: minute * MINUTE })).toBe(name);
        },
      ),
    );
  });
});

describe('time windows', () => {
  const timing = { batchFrequencySeconds: 100, pruningSlackSeconds: 300 };

  it('a blob named for minute m covers m - slack .. m + 60 s + batch frequency + slack', () => {
    const m = Date.UTC(2024, 4, 1, 12, 0);
    expect(blobTimeWindow(m, timing)).toEqual({ startMs: m - 300_000, endMs: m + 60_000 + 100_000 + 300_000 });
  });

  it('nameMinuteWindow is exactly the set of minutes whose blob window meets the range (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 1, max: 5_000_000 }),
        fc.integer({ min: 60, max: 720 }),
        fc.integer({ min: 0, max: 900 }),
        (fromOffset, length, batchFrequencySeconds, pruningSlackSeconds) => {
          const base = Date.UTC(2024, 0, 1);
          const fromMs = base + fromOffset;
          const toMs = fromMs + length;
          const t = { batchFrequencySeconds, pruningSlackSeconds };
          const window = nameMinuteWindow(fromMs, toMs, t)!;
          const meets = (m: number) => {
            const w = blobTimeWindow(m, t);
            return w.startMs < toMs && w.endMs >= fromMs;
          };
          expect(meets(window.firstMinuteMs)).toBe(true);
          expect(meets(window.lastMinuteMs)).toBe(true);
          expect(meets(window.firstMinuteMs - MINUTE)).toBe(false);
          expect(meets(window.lastMinuteMs + MINUTE)).toBe(false);
        },
      ),
    );
  });

  it('is open when the range is', () => {
    expect(nameMinuteWindow(undefined, undefined, timing)).toBeNull();
    expect(nameMinuteWindow(undefined, Date.UTC(2024, 0, 1), timing)?.firstMinuteMs).toBe(-Infinity);
  });
});

/** Counts list calls, to show prefixes narrow the listing. */
class CountingStore extends MemoryBlobStore {
  lists: string[] = [];
  hierarchyLists: string[] = [];

  override list(container: string, prefix?: string, options?: ListOptions): AsyncIterable<BlobItem> {
    this.lists.push(prefix ?? '');
    return super.list(container, prefix, options);
  }

  override listHierarchy(container: string, prefix: string, options: HierarchyListOptions): AsyncIterable<BlobItem | BlobPrefix> {
    this.hierarchyLists.push(prefix);
    return super.listHierarchy(container, prefix, options);
  }
}

async function namesOf(store: BlobStore, f: FileNameFormat, window: ReturnType<typeof nameMinuteWindow>, startAt?: string) {
  const names: string[] = [];
  const unrecognized: string[] = [];
  for await (const entry of listArchiveBlobs(store, 'archive', f, {
    window,
    batchFrequencySeconds: 60,
    ...(startAt === undefined ? {} : { startAt }),
  })) {
    (entry.kind === 'archive' ? names : unrecognized).push(entry.item.name);
  }
  return { names, unrecognized };
}

describe('listArchiveBlobs', () => {
  it('lists partitions it finds (0, 00, after a failover 5) and narrows by time', async () => {
    const store = new CountingStore();
    await store.ensureContainer('archive');
    const f = format(DEFAULT);
    const start = Date.UTC(2024, 4, 1, 11, 50);
    const all: string[] = [];
    for (const partition of ['0', '00', '5']) {
      for (let minute = 0; minute < 40; minute++) {
        const name = blobNameFor(DEFAULT, { iothub: 'hub', partition, minute: start + minute * MINUTE });
        all.push(name);
        await store.put('archive', name, new Uint8Array(0));
      }
    }
    await store.put('archive', 'hub/readme.txt', new Uint8Array(0));
    const window = { firstMinuteMs: Date.UTC(2024, 4, 1, 12, 5), lastMinuteMs: Date.UTC(2024, 4, 1, 12, 14) };
    const { names } = await namesOf(store, f, window);
    const expected = all.filter((n) => {
      const m = f.parse(n)!.minuteMs;
      return m >= window.firstMinuteMs && m <= window.lastMinuteMs;
    });
    expect(names).toEqual([...expected].sort());
    expect(names).toHaveLength(30);
    // The window keeps two ten-minute runs of hour 12 (12:05-12:14): one listing each per partition, never the
    // whole hour, and hour 11 is never listed.
    expect(store.lists).toEqual([
      'hub/0/2024/05/01/12/0',
      'hub/0/2024/05/01/12/1',
      'hub/00/2024/05/01/12/0',
      'hub/00/2024/05/01/12/1',
      'hub/5/2024/05/01/12/0',
      'hub/5/2024/05/01/12/1',
    ]);
  });

  it('lists the whole hour when the window keeps more than half of it', async () => {
    const store = new CountingStore();
    await store.ensureContainer('archive');
    const f = format(DEFAULT);
    const minutes: number[] = [];
    for (let minute = 0; minute < 180; minute += 7) minutes.push(Date.UTC(2024, 4, 1, 11) + minute * MINUTE);
    for (const minute of minutes) await store.put('archive', blobNameFor(DEFAULT, { iothub: 'hub', partition: '0', minute }), new Uint8Array(0));
    // 12:10-12:50: five ten-minute runs of the hour; one listing of its sixty names beats five of ten.
    const window = { firstMinuteMs: Date.UTC(2024, 4, 1, 12, 10), lastMinuteMs: Date.UTC(2024, 4, 1, 12, 50) };
    const { names } = await namesOf(store, f, window);
    const inside = minutes.filter((m) => m >= window.firstMinuteMs && m <= window.lastMinuteMs);
    expect(names).toEqual(inside.map((minute) => blobNameFor(DEFAULT, { iothub: 'hub', partition: '0', minute })));
    expect(names.length).toBeGreaterThan(0);
    expect(store.lists).toEqual(['hub/0/2024/05/01/12/']);
  });

  it('agrees with listing everything and filtering by name, for any format, window and resume point (property)', async () => {
    const formats = [
      DEFAULT,
      `${DEFAULT}.json`,
      '{iothub}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{partition}',
      '{YYYY}/{MM}/{iothub}/{partition}/{DD}/{HH}/{mm}',
      '{iothub}/{partition}/{DD}/{MM}/{YYYY}/{HH}/{mm}',
      'archive/{iothub}_{partition}_{YYYY}{MM}{DD}{HH}{mm}',
    ];
    const base = Date.UTC(2024, 0, 31, 22, 0);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...formats),
        fc.uniqueArray(fc.tuple(fc.constantFrom('0', '00', '1', '3'), fc.integer({ min: 0, max: 60 * 30 })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: -120, max: 60 * 30 }),
        fc.integer({ min: 0, max: 60 * 30 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (source, blobs, firstOffset, length, resume) => {
          const store = new MemoryBlobStore();
          await store.ensureContainer('archive');
          const f = format(source);
          const all = blobs.map(([partition, minute]) => blobNameFor(source, { iothub: 'hub', partition, minute: base + minute * 60 * MINUTE / 30 }));
          for (const name of all) await store.put('archive', name, new Uint8Array(0));
          await store.put('archive', 'zz-not-archive', new Uint8Array(0));
          const window = { firstMinuteMs: base + firstOffset * MINUTE, lastMinuteMs: base + (firstOffset + length) * MINUTE };
          const sorted = [...new Set(all)].sort();
          const startAt = resume === undefined ? undefined : sorted[resume % sorted.length];
          const expected = sorted.filter((n) => {
            const m = f.parse(n)!.minuteMs;
            return m >= window.firstMinuteMs && m <= window.lastMinuteMs && (startAt === undefined || n >= startAt);
          });
          const { names } = await namesOf(store, f, window, startAt);
          expect(names).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('with no window lists everything under the fixed prefix and reports names outside the format', async () => {
    const store = new MemoryBlobStore();
    await store.ensureContainer('archive');
    const f = format(`routed/${DEFAULT}`);
    await store.put('archive', 'routed/hub/0/2024/05/01/12/00', new Uint8Array(0));
    await store.put('archive', 'routed/hub/0/notes.txt', new Uint8Array(0));
    await store.put('archive', 'other/file', new Uint8Array(0));
    const { names, unrecognized } = await namesOf(store, f, null);
    expect(names).toEqual(['routed/hub/0/2024/05/01/12/00']);
    expect(unrecognized).toEqual(['routed/hub/0/notes.txt']);
  });
});
