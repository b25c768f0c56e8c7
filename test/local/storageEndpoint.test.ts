import { describe, expect, it } from 'vitest';
import { parseFileNameFormat, type FileNameFormat } from '../../src/lib/archive/fileNameFormat.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { readArchive } from '../../src/lib/message/readArchive.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { SimulatedClock } from '../../src/local/clock.js';
import { utf32le } from '../../src/local/devices.js';
import { partitionOf } from '../../src/local/eventStream.js';
import type { HubMessage } from '../../src/local/hub.js';
import { iotHubTime, StorageEndpoint, type WrittenBlob } from '../../src/local/storageEndpoint.js';

const START = new Date('2026-05-01T12:00:00.000Z');

function format(source = '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}'): FileNameFormat {
  const parsed = parseFileNameFormat(source);
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

function hubMessage(deviceId: string, offsetMs: number, overrides: Partial<HubMessage> = {}): HubMessage {
  const enqueuedTime = new Date(START.getTime() + offsetMs);
  return {
    sequence: offsetMs,
    endpoint: 'archive',
    resend: 0,
    deviceId,
    enqueuedTime,
    deliveredAt: enqueuedTime,
    body: Buffer.from(JSON.stringify({ deviceId, temperature: 25.5 })),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    messageId: `${deviceId}-${offsetMs}`,
    properties: { level: 'storage', iothubname: 'Hub', DeviceLocation: 'Seattle' },
    enrichments: { iothubname: 'Hub', DeviceLocation: 'Seattle' },
    systemProperties: {
      'iothub-connection-device-id': deviceId,
      'iothub-connection-auth-method': '{"scope":"device"}',
      'iothub-connection-auth-generation-id': '638500000000000001',
      'iothub-enqueuedtime': enqueuedTime.toISOString(),
      'iothub-message-source': 'Telemetry',
    },
    ...overrides,
  };
}

async function decode(store: MemoryBlobStore, blob: WrittenBlob): Promise<{ messages: RoutedMessage[]; format: string; damage: unknown }> {
  const read = await store.openRead(blob.container, blob.name);
  if (read === null) throw new Error(`${blob.name} is missing`);
  const messages: RoutedMessage[] = [];
  let summary: { format: string; damage: unknown } = { format: '?', damage: null };
  for await (const event of readArchive(read.chunks, { name: blob.name })) {
    if (event.type === 'records') messages.push(...event.messages);
    else summary = event.summary;
  }
  return { messages, ...summary };
}

async function endpointWith(encoding: 'avro' | 'json', partitionCount = 2) {
  const store = new MemoryBlobStore();
  await store.ensureContainer('archive');
  const clock = new SimulatedClock(START, 1);
  const blobs: WrittenBlob[] = [];
  const endpoint = new StorageEndpoint({
    store,
    clock,
    container: 'archive',
    iotHubName: 'ContosoHub',
    format: format(),
    encoding,
    batchFrequencySeconds: 60,
    partitionCount,
    onBlob: (blob) => blobs.push(blob),
  });
  return { store, endpoint, blobs };
}

/** Two devices in different partitions of two. */
function twoDevices(): [string, string] {
  const a = 'device-001';
  const b = ['device-002', 'device-003', 'device-004', 'device-005'].find((d) => partitionOf(d, 2) !== partitionOf(a, 2))!;
  return [a, b];
}

describe('storage endpoint', () => {
  it('writes seven fractional digits, as IoT Hub does', () => {
    expect(iotHubTime(new Date('2026-05-01T12:00:00.123Z'))).toBe('2026-05-01T12:00:00.1230000Z');
  });

  it('writes one Avro blob per partition and period, named by the period start, that readArchive decodes back', async () => {
    const { store, endpoint, blobs } = await endpointWith('avro');
    const [a, b] = twoDevices();
    endpoint.deliver(hubMessage(a, 1_000));
    endpoint.deliver(hubMessage(a, 2_000));
    endpoint.deliver(hubMessage(b, 3_000));
    // Arriving after the period's end closes it first: both partitions' batches are written.
    endpoint.deliver(hubMessage(a, 61_000));
    await endpoint.stop();
    expect(blobs.map((x) => `${x.name} ${x.records}`).sort()).toEqual(
      [
        `ContosoHub/${partitionOf(a, 2)}/2026/05/01/12/00 2`,
        `ContosoHub/${partitionOf(b, 2)}/2026/05/01/12/00 1`,
        `ContosoHub/${partitionOf(a, 2)}/2026/05/01/12/01 1`,
      ].sort(),
    );
    const first = await decode(store, blobs.find((x) => x.records === 2)!);
    expect(first.format).toBe('avro-iothub');
    expect(first.damage).toBeNull();
    expect(first.messages.map((m) => m.messageId)).toEqual([`${a}-1000`, `${a}-2000`]);
    expect(first.messages[0]).toMatchObject({
      deviceId: a,
      enqueuedTime: new Date(START.getTime() + 1_000),
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      properties: { level: 'storage', iothubname: 'Hub', DeviceLocation: 'Seattle' },
      systemProperties: { connectionDeviceId: a, connectionDeviceGenerationId: '638500000000000001', enqueuedTime: '2026-05-01T12:00:01.0000000Z' },
      decoded: { kind: 'json', value: { deviceId: a, temperature: 25.5 } },
    });
  });

  it('writes an empty blob for a partition with nothing in a period', async () => {
    const { store, endpoint, blobs } = await endpointWith('avro');
    const [a, b] = twoDevices();
    endpoint.deliver(hubMessage(a, 1_000));
    endpoint.deliver(hubMessage(a, 60_500));
    await endpoint.stop();
    const empty = blobs.find((x) => x.name.startsWith(`ContosoHub/${partitionOf(b, 2)}/`))!;
    expect(empty.records).toBe(0);
    expect(empty.body.byteLength).toBe(0);
    expect(endpoint.stats).toMatchObject({ blobs: 3, emptyBlobs: 1, records: 2 });
    const decoded = await decode(store, empty);
    expect(decoded).toMatchObject({ format: 'empty', messages: [] });
  });

  it('writes JSON lines with Body as JSON when declared UTF-8 JSON and base64 otherwise, and both decode', async () => {
    const { store, endpoint, blobs } = await endpointWith('json', 1);
    const utf32 = utf32le('{"deviceId":"legacy","temperature":30.1}');
    endpoint.deliver(hubMessage('device-001', 1_000));
    endpoint.deliver(hubMessage('legacy', 2_000, { contentType: undefined, contentEncoding: undefined, messageId: undefined, body: utf32 }));
    await endpoint.stop();
    expect(blobs).toHaveLength(1);
    const lines = blobs[0]!.body.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { Body: unknown; SystemProperties: Record<string, string> });
    expect(lines[0]!.Body).toEqual({ deviceId: 'device-001', temperature: 25.5 });
    expect(lines[1]!.Body).toBe(Buffer.from(utf32).toString('base64'));
    expect(lines[1]!.SystemProperties).not.toHaveProperty('contentType');
    const decoded = await decode(store, blobs[0]!);
    expect(decoded.format).toBe('json-lines');
    expect(Buffer.from(decoded.messages[1]!.body).equals(utf32)).toBe(true);
    expect(decoded.messages[1]!.decoded).toMatchObject({ kind: 'json', value: { deviceId: 'legacy', temperature: 30.1 }, decodedFrom: { base64: 'storage', charset: 'utf-32le' } });
  });

  it('moves a batch to the next minute rather than overwrite a blob an earlier run wrote', async () => {
    const { store, endpoint, blobs } = await endpointWith('avro', 1);
    await store.create('archive', 'ContosoHub/0/2026/05/01/12/00', Buffer.from('earlier run'));
    endpoint.deliver(hubMessage('device-001', 1_000));
    await endpoint.stop();
    expect(blobs.map((x) => x.name)).toEqual(['ContosoHub/0/2026/05/01/12/01']);
    expect((await store.get('archive', 'ContosoHub/0/2026/05/01/12/00'))?.body.toString()).toBe('earlier run');
  });
});
