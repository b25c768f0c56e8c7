import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkRoutesCommand } from '../../src/cli/commands/checkRoutes.js';
import { runCommand } from '../support/cli.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

let dir: string;
beforeAll(async () => {
  dir = await tempDir('iot-routing-check-routes-');
});

const run = (args: string[]) => runCommand(checkRoutesCommand, args);

async function file(name: string, content: unknown): Promise<string> {
  const target = path.join(dir, name);
  await writeFile(target, typeof content === 'string' ? content : JSON.stringify(content));
  return target;
}

const ndjson = (...lines: unknown[]) => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;

describe('iot-routing check-routes', () => {
  it("routes the tutorial's messages with the repository's routing.config.json, and says why", async () => {
    const messages = await file(
      'tutorial.ndjson',
      ndjson(
        { deviceId: 'device-001', properties: { level: 'critical' }, contentType: 'application/json', contentEncoding: 'utf-8', body: { temperature: 31 }, twin: { tags: { location: 'Seattle' } } },
        { deviceId: 'device-002', properties: { level: 'storage' }, body: { temperature: 22 } },
        { deviceId: 'device-003', properties: { level: 'normal' }, contentType: 'application/json', contentEncoding: 'utf-8', body: { temperature: 25 } },
      ),
    );
    const result = await run([messages, '--config', 'routing.config.json']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('line 1: device-001 → criticalQueue');
    expect(result.stdout).toContain('route "CriticalRoute" → criticalQueue: matched (level="critical")');
    expect(result.stdout).toContain('enrichments on criticalQueue: iothubname=ContosoTestHub, DeviceLocation=Seattle, customerID=6ce345b8-1e4a-411e-9398-d34587459a3a');
    expect(result.stdout).toContain('line 2: device-002 → archive');
    // No twin: IoT Hub stamps the placeholder text itself.
    expect(result.stdout).toContain('DeviceLocation=$twin.tags.location');
    expect(result.stdout).toContain('(unresolved, stamped as the literal text: DeviceLocation)');
    expect(result.stdout).toContain('line 3: device-003 → events');
    expect(result.stdout).toContain('fallback route → events: delivered, because no route matched');
    expect(result.stdout).toContain('3 messages against 2 routes of routing.config.json: criticalQueue 1, archive 1, events 1');
  });

  it('explains the contentType/contentEncoding trap of $body routes', async () => {
    const config = await file('body.json', {
      iotHubName: 'hub',
      routes: [{ name: 'Hot', condition: '$body.temperature > 30', endpoint: 'criticalQueue' }],
    });
    const messages = await file(
      'body.ndjson',
      ndjson(
        { deviceId: 'legacy', properties: {}, body: { temperature: 35 } },
        { deviceId: 'declared', properties: {}, contentType: 'application/json', contentEncoding: 'UTF-8', body: { temperature: 35 } },
        { deviceId: 'utf32', properties: {}, contentType: 'application/json', contentEncoding: 'utf-32', body: { temperature: 35 } },
      ),
    );
    const result = await run([messages, '--config', config]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('line 1: legacy → events');
    expect(result.stdout).toMatch(/route "Hot" → criticalQueue: not matched: .*\$body.*contentType is not set; contentEncoding is not set/);
    expect(result.stdout).toContain('$body is not visible to routing queries');
    expect(result.stdout).toContain('line 2: declared → criticalQueue');
    expect(result.stdout).toContain('line 3: utf32 → criticalQueue');
  });

  it('prints one JSON verdict per message with --format ndjson', async () => {
    const messages = await file('one.ndjson', ndjson({ deviceId: 'd', properties: { level: 'critical' } }));
    const result = await run([messages, '--config', 'routing.config.json', '--format', 'ndjson']);
    const verdict = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
    expect(verdict).toMatchObject({ line: 1, deviceId: 'd', endpoints: ['criticalQueue'], matched: [{ route: 'CriticalRoute', endpoint: 'criticalQueue' }], fallback: false });
    expect(verdict['body']).toMatchObject({ visible: false });
    expect(result.stderr).toContain('1 message against 2 routes');
  });

  it('refuses a route that does not parse, showing where', async () => {
    const config = await file('broken.json', {
      routes: [
        { name: 'Ok', condition: 'level="critical"', endpoint: 'criticalQueue' },
        { name: 'Broken', condition: 'level = "critical" )', endpoint: 'archive' },
      ],
    });
    const messages = await file('any.ndjson', ndjson({ deviceId: 'd', properties: {} }));
    const result = await run([messages, '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('routes[1] ("Broken").condition does not parse');
    expect(result.stderr).toMatch(/at 19\b/);
    expect(result.stderr).toContain('    level = "critical" )\n                       ^');
    expect(result.stdout).toBe('');
  });

  it('warns about typographic quotes, which IoT Hub accepts as part of a name (a route that never matches)', async () => {
    const config = await file('curly.json', {
      routes: [{ name: 'CriticalRoute', condition: 'level = \u201ccritical\u201d', endpoint: 'criticalQueue' }],
    });
    const messages = await file('curly.ndjson', ndjson({ deviceId: 'd', properties: { level: 'critical' } }));
    const result = await run([messages, '--config', config]);
    // Accepted, as IoT Hub accepts it, and evaluated as IoT Hub would: the message falls back.
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      'warning: routes[0] ("CriticalRoute").condition holds a typographic quote (\u201c at 8): IoT Hub reads it as part of a property name, so the route never matches; use straight quotes',
    );
    expect(result.stdout).toContain('line 1: d → events');
    expect(result.stdout).toContain('\u201ccritical\u201d is not an application property of the message');
  });

  it('does not warn about a typographic quote inside a string literal, which the route compares as meant', async () => {
    const config = await file('literal.json', {
      routes: [{ name: 'SiteRoute', condition: "site = 'Joe\u2019s Plant' AND note = \"say \u201chi\u201d\"", endpoint: 'criticalQueue' }],
    });
    const messages = await file('literal.ndjson', ndjson({ deviceId: 'd', properties: { site: 'Joe\u2019s Plant', note: 'say \u201chi\u201d' } }));
    const result = await run([messages, '--config', config]);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain('typographic quote');
    expect(result.stdout).toContain('line 1: d → criticalQueue');
  });

  it('names the line of input that is not a message', async () => {
    const messages = await file('bad.ndjson', `${JSON.stringify({ deviceId: 'd' })}\nnot json\n`);
    const result = await run([messages, '--config', 'routing.config.json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('line 2: not valid JSON');
  });
});
