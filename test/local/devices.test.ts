import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/lib/message/body.js';
import { createFleet, LEVEL_SHARES, pickLevel } from '../../src/local/devices.js';

function take(count: number, seed: number, devices = 3) {
  const fleet = createFleet({ devices, seed, legacyShare: 0.5 });
  return fleet.devices.flatMap((d) => Array.from({ length: count }, () => d.next()));
}

describe('simulated devices', () => {
  it('send the same messages for the same seed, and different ones for another', () => {
    const a = take(20, 7).map((m) => Buffer.from(m.body).toString('hex') + JSON.stringify(m.properties) + (m.messageId ?? ''));
    const b = take(20, 7).map((m) => Buffer.from(m.body).toString('hex') + JSON.stringify(m.properties) + (m.messageId ?? ''));
    const c = take(20, 8).map((m) => Buffer.from(m.body).toString('hex') + JSON.stringify(m.properties) + (m.messageId ?? ''));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('give every message its own id, new in every run, so a rerun against kept storage is not taken for re-sends', () => {
    const ids = (runId: number) => createFleet({ devices: 2, seed: 5, runId, legacyShare: 0 }).devices.flatMap((d) => [d.next().messageId, d.next().messageId]);
    expect(new Set(ids(1)).size).toBe(4);
    expect(ids(1)).toEqual(ids(1));
    expect(ids(2).some((id) => ids(1).includes(id))).toBe(false);
    // The readings do not depend on the run: only the ids are salted.
    const bodies = (runId: number) => createFleet({ devices: 1, seed: 5, runId }).devices[0]!.next().body;
    expect(Buffer.from(bodies(1)).equals(Buffer.from(bodies(2)))).toBe(true);
  });

  it("follow the tutorial's body and level mix: normal 70 %, critical 15 %, storage 15 %", () => {
    const fleet = createFleet({ devices: 4, seed: 3, legacyShare: 0 });
    const levels = new Map<string, number>();
    let n = 0;
    for (const device of fleet.devices) {
      for (let i = 0; i < 2500; i++) {
        const message = device.next();
        if (i < 5) {
          const body = JSON.parse(Buffer.from(message.body).toString('utf8')) as Record<string, unknown>;
          expect(Object.keys(body)).toEqual(['deviceId', 'temperature', 'humidity', 'pointInfo']);
          expect(body['deviceId']).toBe(device.deviceId);
          expect(body['pointInfo']).toBe(`This is a ${message.properties['level']} message.`);
          expect(message).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8' });
        }
        levels.set(message.properties['level']!, (levels.get(message.properties['level']!) ?? 0) + 1);
        n++;
      }
    }
    for (const [level, share] of LEVEL_SHARES) expect(Math.abs((levels.get(level) ?? 0) / n - share)).toBeLessThan(0.02);
  });

  it('keep temperature in [20, 35) and humidity in [60, 80) for every seed', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const [device] = createFleet({ devices: 1, seed, legacyShare: 0 }).devices;
        for (let i = 0; i < 20; i++) {
          const body = JSON.parse(Buffer.from(device!.next().body).toString('utf8')) as { temperature: number; humidity: number };
          expect(body.temperature).toBeGreaterThanOrEqual(20);
          expect(body.temperature).toBeLessThan(35);
          expect(body.humidity).toBeGreaterThanOrEqual(60);
          expect(body.humidity).toBeLessThan(80);
        }
      }),
      { numRuns: 50 },
    );
  });

  it('picks levels by cumulative share', () => {
    expect(pickLevel(0)).toBe('normal');
    expect(pickLevel(0.6999)).toBe('normal');
    expect(pickLevel(0.7)).toBe('critical');
    expect(pickLevel(0.85)).toBe('storage');
    expect(pickLevel(0.9999)).toBe('storage');
  });

  it('make a share of devices legacy: undeclared UTF-8 or BOM-less UTF-32LE, without message ids', () => {
    const fleet = createFleet({ devices: 10, seed: 1, legacyShare: 0.4 });
    const kinds = fleet.devices.map((d) => d.kind);
    expect(kinds.filter((k) => k === 'undeclared')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'utf32')).toHaveLength(2);
    for (const device of fleet.devices) {
      const message = device.next();
      if (device.kind === 'standard') {
        expect(message.messageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        continue;
      }
      expect(message.contentType).toBeUndefined();
      expect(message.contentEncoding).toBeUndefined();
      expect(message.messageId).toBeUndefined();
      // Our decoder still reads both, by sniffing: that is what the checks then report on.
      const decoded = decodeBody(message.body);
      expect(decoded.kind).toBe('json');
      expect(decoded.decodedFrom.charset).toBe(device.kind === 'utf32' ? 'utf-32le' : 'utf-8');
      if (device.kind === 'utf32') expect(message.body.byteLength % 4).toBe(0);
    }
  });

  it('give every device a twin with a location tag except the last, so $twin.tags.location stays unresolved for it', () => {
    const fleet = createFleet({ devices: 5, seed: 9 });
    expect(fleet.devices.map((d) => d.deviceId)).toEqual(['device-001', 'device-002', 'device-003', 'device-004', 'device-005']);
    expect(fleet.devices.slice(0, 4).every((d) => typeof d.twin.tags['location'] === 'string')).toBe(true);
    expect(fleet.devices[4]!.twin.tags['location']).toBeUndefined();
    expect(fleet.twinOf('device-002')).toBe(fleet.devices[1]!.twin);
    expect(createFleet({ devices: 1, seed: 9 }).devices[0]!.twin.tags['location']).toBeDefined();
  });

  it('stagger devices within the period and honour the rate', () => {
    const fleet = createFleet({ devices: 4, seed: 2, rate: 2 });
    expect(fleet.periodMs).toBe(500);
    expect(fleet.devices.map((d) => d.phaseMs)).toEqual([0, 125, 250, 375]);
    expect(() => createFleet({ devices: 1, seed: 1, rate: 0 })).toThrow(RangeError);
    expect(() => createFleet({ devices: 1, seed: 1, legacyShare: 2 })).toThrow(RangeError);
  });
});
