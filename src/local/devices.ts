/**
 * Simulated devices, as in Microsoft's routing tutorial (SimulatedDevice): one message per second each, with the
 * application property `level` = normal (70 %), critical (15 %) or storage (15 %) and a JSON body
 * `{ deviceId, temperature, humidity, pointInfo }`.
 *
 * Well-behaved devices declare `contentType=application/json` and `contentEncoding=utf-8` and set a `message-id`,
 * as the device SDKs do. A share of "legacy" devices behave like the tutorial's own sample instead, so the checks
 * have something to find: `undeclared` devices send UTF-8 JSON without contentType/contentEncoding (IoT Hub then
 * stores the body as base64 and `$body` routing queries cannot see it), `utf32` devices send BOM-less UTF-32LE
 * JSON, also undeclared. Neither sets a `message-id`, so their identity is derived from device, time and body.
 *
 * Every value comes from a per-device seeded stream, so message k of a device is the same in every run with that
 * seed, whatever the speed-up or scheduling.
 */
import type { RouteTwin } from '../lib/routing/evaluate.js';
import type { DeviceMessage } from './hub.js';
import { createHash } from 'node:crypto';
import { streamFor, type Random } from './random.js';

export type DeviceKind = 'standard' | 'undeclared' | 'utf32';

export interface DeviceTwin extends RouteTwin {
  deviceId: string;
  tags: Record<string, string>;
  properties: { desired: Record<string, unknown>; reported: Record<string, unknown> };
}

export interface SimulatedDevice {
  deviceId: string;
  kind: DeviceKind;
  twin: DeviceTwin;
  /** Offset of this device's first message from the start, so devices do not all send in the same instant. */
  phaseMs: number;
  /** The k-th message (k = 0, 1, ...). Deterministic in (seed, device, k); call in increasing k only. */
  next(): DeviceMessage;
  /** How many messages this device has produced. */
  readonly produced: number;
}

export interface FleetOptions {
  devices: number;
  seed: number;
  /** Share of devices in [0, 1] that are legacy (half `undeclared`, half `utf32`). Default 0.2. */
  legacyShare?: number;
  /** Messages per second per device. Default 1 (the tutorial's rate). */
  rate?: number;
  /**
   * Salts the message ids. A device SDK gives every message a fresh id, so two runs with the same seed against the
   * same (persistent) storage must not send the same ids, or the second run's messages would be taken for
   * re-sends of the first's. The local runtime passes its simulated start time. Default 0.
   */
  runId?: number;
}

export interface Fleet {
  devices: SimulatedDevice[];
  /** Milliseconds between two messages of one device. */
  periodMs: number;
  twinOf(deviceId: string): DeviceTwin | undefined;
}

export const LEVEL_SHARES = [
  ['normal', 0.7],
  ['critical', 0.15],
  ['storage', 0.15],
] as const;

export type Level = (typeof LEVEL_SHARES)[number][0];

const CITIES = ['Seattle', 'Redmond', 'Amsterdam', 'Singapore', 'Sydney', 'Toronto'] as const;

export function deviceIdOf(index: number): string {
  return `device-${String(index + 1).padStart(3, '0')}`;
}

export function pickLevel(u: number): Level {
  let acc = 0;
  for (const [level, share] of LEVEL_SHARES) {
    acc += share;
    if (u < acc) return level;
  }
  return 'normal';
}

/** Two decimals, as a real sensor reports; the value stays in [min, max). */
function reading(random: Random, min: number, max: number): number {
  return Math.min(max - 0.01, Math.round((min + random() * (max - min)) * 100) / 100);
}

/** BOM-less UTF-32LE, as the tutorial's C# device wrote with Encoding.UTF32 and no preamble. */
export function utf32le(text: string): Buffer {
  const codePoints = Array.from(text, (c) => c.codePointAt(0)!);
  const out = Buffer.alloc(codePoints.length * 4);
  codePoints.forEach((cp, i) => out.writeUInt32LE(cp, i * 4));
  return out;
}

export function createFleet(options: FleetOptions): Fleet {
  const count = Math.max(0, Math.floor(options.devices));
  const rate = options.rate ?? 1;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a positive number, got ${rate}`);
  const share = options.legacyShare ?? 0.2;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`legacyShare must be between 0 and 1, got ${share}`);
  const periodMs = 1000 / rate;

  // Which devices are legacy: a seeded shuffle, so the choice does not depend on the device count's parity.
  const order = Array.from({ length: count }, (_, i) => i);
  const pick = streamFor(options.seed, 'legacy');
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(pick() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const legacy = new Map<number, DeviceKind>();
  order.slice(0, Math.round(count * share)).forEach((index, n) => legacy.set(index, n % 2 === 0 ? 'undeclared' : 'utf32'));

  const devices: SimulatedDevice[] = [];
  for (let index = 0; index < count; index++) {
    const deviceId = deviceIdOf(index);
    const random = streamFor(options.seed, deviceId);
    const tags: Record<string, string> = { environment: 'local-simulation' };
    // The last device has no location tag: `$twin.tags.location` enrichments stay unresolved for it, as IoT Hub
    // stamps them for a twin without the tag (the literal placeholder text).
    if (count === 1 || index < count - 1) tags['location'] = CITIES[index % CITIES.length]!;
    const twin: DeviceTwin = {
      deviceId,
      tags,
      properties: { desired: { telemetryIntervalSeconds: 1 / rate }, reported: { firmware: '1.4.2' } },
    };
    const phaseMs = Math.floor((index * periodMs) / Math.max(1, count));
    devices.push(simulatedDevice(deviceId, legacy.get(index) ?? 'standard', twin, random, phaseMs, `${options.seed}/${options.runId ?? 0}`));
  }
  const byId = new Map(devices.map((d) => [d.deviceId, d.twin]));
  return { devices, periodMs, twinOf: (id) => byId.get(id) };
}

/** A version-4-shaped UUID from (run, device, message number): unique per message, the same in a repeated run. */
function messageIdOf(run: string, deviceId: string, k: number): string {
  const hex = createHash('sha256').update(`${run}/${deviceId}/${k}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function simulatedDevice(deviceId: string, kind: DeviceKind, twin: DeviceTwin, random: Random, phaseMs: number, run: string): SimulatedDevice {
  let produced = 0;
  return {
    deviceId,
    kind,
    twin,
    phaseMs,
    get produced() {
      return produced;
    },
    next(): DeviceMessage {
      const messageId = messageIdOf(run, deviceId, produced);
      produced++;
      const level = pickLevel(random());
      const temperature = reading(random, 20, 35);
      const humidity = reading(random, 60, 80);
      const text = JSON.stringify({ deviceId, temperature, humidity, pointInfo: `This is a ${level} message.` });
      const properties = { level };
      switch (kind) {
        case 'standard':
          return { deviceId, body: Buffer.from(text, 'utf8'), contentType: 'application/json', contentEncoding: 'utf-8', properties, messageId };
        case 'undeclared':
          return { deviceId, body: Buffer.from(text, 'utf8'), properties };
        case 'utf32':
          return { deviceId, body: utf32le(text), properties };
      }
    },
  };
}
