/**
 * GET /api/reports, called as the host calls it (a real HttpRequest and InvocationContext), over partials that two
 * partitions wrote to Azurite. Only the registration is intercepted.
 */
import { HttpRequest, InvocationContext, type HttpFunctionOptions, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { processServices } from '../../src/lib/runtime.js';
import { hostQuery } from '../../src/local/httpServer.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration } from '../support/registrations.js';

const azurite = useAzurite();
const saved = { ...process.env };
let options: HttpFunctionOptions;

const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);

function batch(partition: string, items: ReadonlyArray<{ device: string; id: string; at: number; temperature: number }>) {
  return decodeEventHubBatch(
    items.map((m) => Buffer.from(JSON.stringify({ temperature: m.temperature }))),
    {
      partitionContext: { partitionId: partition },
      propertiesArray: items.map(() => ({ iothubname: 'ContosoTestHub' })),
      systemPropertiesArray: items.map((m) => ({
        'iothub-connection-device-id': m.device,
        'iothub-enqueuedtime': new Date(T0 + m.at).toISOString(),
        'message-id': m.id,
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
      })),
    },
  );
}

beforeAll(async () => {
  process.env['AzureWebJobsStorage'] = azurite().connectionString;
  process.env['REPORTS_CONTAINER'] = uniqueContainerName('reports');
  process.env['QUARANTINE_CONTAINER'] = uniqueContainerName('quarantine');
  options = registration((await captureRegistrations()).registrations, 'reports').options as unknown as HttpFunctionOptions;
  // Seed through the same services the function uses: the device moved from partition 1 to 4 and IoT Hub re-sent
  // message "b" through the new one.
  const stream = telemetryStreamFromServices(await processServices());
  await stream.processBatch(
    batch('1', [
      { device: 'pump,7', id: 'a', at: 1_000, temperature: 10 },
      { device: 'pump,7', id: 'b', at: 2_000, temperature: 20 },
      { device: 'valve-2', id: 'a', at: 3_000, temperature: 5 },
    ]),
  );
  await stream.processBatch(
    batch('4', [
      { device: 'pump,7', id: 'b', at: 2_000, temperature: 20 },
      { device: 'pump,7', id: 'c', at: 61_000, temperature: 30 },
    ]),
  );
});

afterAll(() => {
  process.env = saved;
});

async function get(query: string): Promise<HttpResponseInit & { text: string }> {
  const url = new URL(`http://localhost:7071/api/reports${query}`);
  // `query` as the Functions host fills it (one value per name), which the handler must not rely on.
  const request = new HttpRequest({ method: 'GET', url: url.toString(), query: hostQuery(url.searchParams) });
  const response = (await options.handler(request, new InvocationContext({ functionName: 'reports' }))) as HttpResponseInit;
  return { ...response, text: String(response.body) };
}

/** RFC 4180 cells of one line (no embedded newlines in these reports). */
function cells(line: string): string[] {
  const out: string[] = [];
  for (const match of line.matchAll(/("(?:[^"]|"")*"|[^,]*)(,|$)/g)) {
    const cell = match[1] ?? '';
    out.push(cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell);
    if (match[2] === '') break;
  }
  return out;
}

const range = 'from=2024-03-01T10:00:00Z&to=2024-03-01T11:00:00Z';

describe('GET /api/reports', () => {
  it('is a function-key protected GET on /api/reports', () => {
    expect(options).toMatchObject({ methods: ['GET'], authLevel: 'function', route: 'reports' });
  });

  it('merges the partials of both partitions and counts the re-sent message once (JSON)', async () => {
    const response = await get(`?${range}&deviceId=${encodeURIComponent('pump,7')}&code=function-key`);
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' });
    const body = JSON.parse(response.text) as { count: number; deviceId: string; reports: Array<Record<string, unknown>> };
    expect(body).toMatchObject({ window: '1m', deviceId: 'pump,7', count: 2 });
    expect(body.reports[0]).toMatchObject({
      deviceId: 'pump,7',
      windowStart: '2024-03-01T10:00:00Z',
      messages: 2,
      fields: { temperature: { count: 2, sum: 30, mean: 15 } },
    });
    expect(body.reports[1]).toMatchObject({ windowStart: '2024-03-01T10:01:00Z', messages: 1 });
  });

  it('answers for device ids that are dot segments or end with a dot, which storage would otherwise resolve away', async () => {
    // A day later, outside the other tests' range.
    const stream = telemetryStreamFromServices(await processServices());
    const day = 86_400_000;
    await stream.processBatch(
      batch('2', [
        { device: '.', id: 'a', at: day, temperature: 1 },
        { device: '..', id: 'a', at: day, temperature: 2 },
        { device: 'pump.', id: 'a', at: day, temperature: 3 },
      ]),
    );
    for (const [device, temperature] of [['.', 1], ['..', 2], ['pump.', 3]] as const) {
      const response = await get(`?from=2024-03-02T10:00:00Z&to=2024-03-02T11:00:00Z&deviceId=${encodeURIComponent(device)}`);
      expect(response.status).toBe(200);
      const body = JSON.parse(response.text) as { count: number; reports: Array<Record<string, unknown>> };
      expect(body.count).toBe(1);
      expect(body.reports[0]).toMatchObject({ deviceId: device, messages: 1, fields: { temperature: { sum: temperature } } });
    }
  });

  it('answers CSV with the documented columns, quoting device ids that hold commas', async () => {
    const response = await get(`?${range}&format=csv`);
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ 'content-type': 'text/csv; charset=utf-8' });
    const lines = response.text.trim().split('\n');
    expect(lines[0]?.startsWith('deviceId,windowStart,windowEnd,field,count,min,max,mean')).toBe(true);
    expect(lines.slice(1).map((l) => cells(l).slice(0, 8))).toEqual([
      ['pump,7', '2024-03-01T10:00:00Z', '2024-03-01T10:01:00Z', 'temperature', '2', '10', '20', '15'],
      ['pump,7', '2024-03-01T10:01:00Z', '2024-03-01T10:02:00Z', 'temperature', '1', '30', '30', '30'],
      ['valve-2', '2024-03-01T10:00:00Z', '2024-03-01T10:01:00Z', 'temperature', '1', '5', '5', '5'],
    ]);
    // What the field columns leave out is still there: outcomes and numbers not aggregated, at the end of each row.
    expect(cells(lines[0]!).slice(-3)).toEqual(['accept', 'warn', 'fieldsOmitted']);
    expect(lines.slice(1).map((l) => cells(l).slice(-3))).toEqual([
      ['2', '0', '0'],
      ['1', '0', '0'],
      ['1', '0', '0'],
    ]);
  });

  it('rejects every bad parameter at once with a 400 that names them', async () => {
    const response = await get('?from=yesterday&to=2024-03-01T11:00:00&window=7m&format=xml&deviceId=bad/id&device=x');
    expect(response.status).toBe(400);
    const body = JSON.parse(response.text) as { error: string; problems: string[] };
    expect(body.error).toBe('BadRequest');
    const named = body.problems.map((p) => p.split(':')[0]);
    expect(named).toEqual(expect.arrayContaining(['device', 'deviceId', 'from', 'to', 'window', 'format']));
  });

  it('names the deviceId it refused, and says how to send a "+" that the URL turned into a space', async () => {
    // IoT Hub device ids may hold "+"; written as is in a query string it arrives as a space.
    const response = await get(`?${range}&deviceId=pump+7`);
    expect(response.status).toBe(400);
    const { problems } = JSON.parse(response.text) as { problems: string[] };
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^deviceId: "pump 7" is not an IoT Hub device id \(.*\); a "\+" in a URL reads as a space: write it as %2B$/);
    const encoded = await get(`?${range}&deviceId=${encodeURIComponent('pump+7')}`);
    expect(encoded.status).toBe(200);
  });

  it('refuses a repeated deviceId, which the host would hand over joined with a comma', async () => {
    // 'pump,7' is a real device here: read as the host's "pump,7" it would answer for the wrong device.
    const response = await get(`?${range}&deviceId=pump&deviceId=7`);
    expect(response.status).toBe(400);
    expect(JSON.parse(response.text)).toMatchObject({ problems: ['deviceId: given more than once'] });
  });

  it('rejects a range over 31 days and a window that is not configured', async () => {
    const long = await get('?from=2024-01-01T00:00:00Z&to=2024-03-01T00:00:00Z');
    expect(long.status).toBe(400);
    expect(long.text).toContain('at most 31 days');
    const hour = await get(`?${range}&window=1h`);
    expect(hour.status).toBe(400);
    expect(hour.text).toContain('not a configured window (1m)');
  });

  it('answers an empty list, not an error, for a range without data', async () => {
    const response = await get('?from=2024-02-01&to=2024-02-02');
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text)).toMatchObject({ count: 0, reports: [] });
  });
});
