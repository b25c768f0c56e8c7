/**
 * `npm start` with a routing config of the user's: a route that sends the critical queue messages the alert policy
 * does not select (criticalAlerts completes them as notAlert, leaving no record) and no fallback route (IoT Hub drops
 * what matches nothing). Its own file: the function modules build their services once per process
 * (`processServices`), so each run of the local runtime needs a process of its own, as `npm start` has.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runLocal } from '../../src/local/main.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

describe('npm start with a routing config of the user\'s', () => {
  it(
    'with a route that sends the queue messages the alert policy does not select, and no fallback route: conserved, and the drops said',
    async () => {
      const dir = await tempDir('iot-routing-local-');
      const routing = JSON.parse(await readFile(fileURLToPath(new URL('../../routing.config.json', import.meta.url)), 'utf8')) as Record<string, unknown> & { routes: Array<Record<string, unknown>> };
      // Every message with a humidity above 60 goes to the queue, whatever its level; nothing falls back.
      routing.routes = routing.routes.map((r) => (r['name'] === 'CriticalRoute' ? { ...r, condition: 'level="critical" OR $body.humidity > 60' } : r));
      routing['fallbackRoute'] = false;
      const configPath = path.join(dir, 'routing.config.json');
      await writeFile(configPath, JSON.stringify(routing));
      let text = '';
      const output = new Writable({ write: (chunk: Buffer, _encoding, done) => ((text += chunk.toString('utf8')), done()) });
      const summary = await runLocal({
        devices: 3,
        durationSeconds: 60,
        seed: 7,
        speedup: 60,
        inMemoryAzurite: true,
        sampleSettingsOnly: true,
        routingConfigPath: configPath,
        port: 0,
        stateDirectory: dir,
        outboxDirectory: path.join(dir, 'outbox'),
        output,
      });
      expect(summary.conservation.criticalQueue.outcomes['notAlert']).toBeGreaterThan(0);
      expect(summary.conservation.ok).toBe(true);
      expect(summary.dropped).toBeGreaterThan(0);
      expect(text).toContain(`dropped by the hub ${summary.dropped} (no route matched and the fallback route is off, as IoT Hub does)`);
      expect(text).toContain('every message is accounted for exactly once per endpoint');
    },
    120_000,
  );

  it('names every problem of a broken config in one message, before starting anything', async () => {
    const dir = await tempDir('iot-routing-local-');
    const configPath = path.join(dir, 'routing.config.json');
    await writeFile(configPath, JSON.stringify({ archive: { encoding: 'xml' }, aggregation: { windows: ['7x'] } }));
    const run = (file: string) => runLocal({ routingConfigPath: file, inMemoryAzurite: true, sampleSettingsOnly: true, port: 0, stateDirectory: dir, output: null });
    await expect(run(configPath)).rejects.toMatchObject({
      code: 'ConfigInvalid',
      message: expect.stringMatching(/invalid \(2 problems\):\n- aggregation\.windows\[0\]: "7x" is not a window size.*\n- archive\.encoding: expected "avro" or "json"/s),
    });
    await expect(run(path.join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'ConfigInvalid', message: expect.stringContaining('ENOENT') });
  });
});
