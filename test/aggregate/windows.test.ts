import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isoSeconds,
  parsePartitionDocName,
  parseWindowDocName,
  partitionDocName,
  windowDocName,
  windowListPrefixes,
  windowStartOf,
} from '../../src/lib/aggregate/windows.js';

const MINUTE = { label: '1m', ms: 60_000 };
const HOUR = { label: '1h', ms: 3_600_000 };
/** IoT Hub device ids: letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ' (up to 128). */
const deviceId = fc.stringMatching(/^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/);

describe('window document names', () => {
  it('round-trip any IoT Hub device id and partition id', () => {
    fc.assert(
      fc.property(deviceId, fc.string({ minLength: 1, maxLength: 10 }), fc.integer({ min: 0, max: 4e12 }), (device, partition, t) => {
        const start = windowStartOf(t, MINUTE);
        const name = windowDocName(MINUTE, device, start, partition);
        expect(parseWindowDocName(name)).toEqual({ sizeLabel: '1m', deviceId: device, startMs: start, partition });
        expect(name.split('/')).toHaveLength(6);
        // Storage resolves `.` and `..` segments, and Azure asks that no segment end with a dot.
        expect(name.split('/').filter((segment) => segment.endsWith('.'))).toEqual([]);
        expect(parsePartitionDocName(partitionDocName(partition))).toBe(partition);
      }),
    );
  });

  it('keep device ids ending with a dot whole, and name every other id as before', () => {
    const at = Date.UTC(2024, 2, 1, 10, 0);
    expect(windowDocName(MINUTE, '.', at, '0')).toBe('windows/1m/2024-03-01/%2E/2024-03-01T10:00:00Z/0.json');
    expect(windowDocName(MINUTE, '..', at, '0')).toBe('windows/1m/2024-03-01/.%2E/2024-03-01T10:00:00Z/0.json');
    expect(windowDocName(MINUTE, 'pump.7', at, '0')).toBe('windows/1m/2024-03-01/pump.7/2024-03-01T10:00:00Z/0.json');
    expect(windowListPrefixes(MINUTE, { fromMs: at, toMs: at + 1 }, 'pump.')).toEqual(['windows/1m/2024-03-01/pump%2E/']);
  });

  it('sort in time order within a device and day', () => {
    const names = [3, 1, 2].map((m) => windowDocName(MINUTE, 'd', Date.UTC(2024, 2, 1, 10, m), '0'));
    expect([...names].sort()).toEqual([1, 2, 3].map((m) => windowDocName(MINUTE, 'd', Date.UTC(2024, 2, 1, 10, m), '0')));
    expect(isoSeconds(Date.UTC(2024, 2, 1, 10, 1))).toBe('2024-03-01T10:01:00Z');
  });

  it('list one prefix per UTC day of the range, narrowed to the device', () => {
    const from = Date.UTC(2024, 2, 1, 23, 0);
    const to = Date.UTC(2024, 2, 3, 0, 0);
    expect(windowListPrefixes(HOUR, { fromMs: from, toMs: to }, 'a/b')).toEqual([
      'windows/1h/2024-03-01/a%2Fb/',
      'windows/1h/2024-03-02/a%2Fb/',
    ]);
    expect(windowListPrefixes(HOUR, undefined, 'x')).toEqual(['windows/1h/']);
    expect(parseWindowDocName('windows/1m/2024-03-01/d/not-a-time/0.json')).toBeNull();
    expect(parseWindowDocName('partitions/0.json')).toBeNull();
  });
});
