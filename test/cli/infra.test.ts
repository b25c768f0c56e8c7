import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { infraCommand } from '../../src/cli/commands/infra.js';
import { loadRoutingConfig } from '../../src/lib/config.js';
import { checkArmTemplate, type ArmTemplate } from '../../src/lib/infra/arm.js';
import { buildArmTemplate } from '../../src/lib/infra/template.js';
import { runCli, runCommand, type CliRun } from '../support/cli.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shippedConfig = path.join(root, 'routing.config.json');
let dir: string;

beforeAll(async () => {
  dir = await tempDir('iot-routing-infra-');
});

const infra = (args: string[]): Promise<CliRun> => runCommand(infraCommand, args);

async function configFile(name: string, content: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Whether config.ts accepts an `archive` section yet (it is being added alongside this command). */
describe('iot-routing infra', () => {
  it('prints the template for routing.config.json to stdout as 2-space JSON', async () => {
    const run = await infra(['--config', shippedConfig]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const expected = buildArmTemplate(await loadRoutingConfig(shippedConfig));
    expect(run.stdout).toBe(`${JSON.stringify(expected, null, 2)}\n`);
    expect(checkArmTemplate(JSON.parse(run.stdout))).toEqual([]);
  });

  it('writes the template to --out and says so on stderr', async () => {
    const out = path.join(dir, 'azuredeploy.json');
    const run = await infra(['--config', shippedConfig, '--out', out]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    const written = JSON.parse(await readFile(out, 'utf8')) as ArmTemplate;
    expect(run.stderr).toBe(`${out}: ARM template with ${written.resources.length} resources for IoT hub ContosoTestHub\n`);
    expect(written.variables['iotHubName']).toBe('ContosoTestHub');
  });

  it('exits 1 listing every problem, those of the config file and those only IoT Hub would raise', async () => {
    const file = await configFile('invalid.json', {
      iotHubName: 'contoso-routing-hub',
      routes: [{ name: 'bad name', condition: 'level="critical"', endpoint: 'criticalQueue' }],
      enrichments: Array.from({ length: 11 }, (_, i) => ({ key: `key${i}`, value: 'v', endpoints: ['archive'] })),
    });
    const run = await infra(['--config', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`iot-routing infra: ${file} cannot be deployed (2 problems):`);
    expect(run.stderr).toContain('routes[0].name: IoT Hub route names hold only letters');
    expect(run.stderr).toContain('enrichments: IoT Hub takes at most 10 enrichments per hub');
    // The route name is reported once, by the config parser, not again in IoT Hub's words.
    expect(run.stderr).not.toContain('is not accepted by IoT Hub (letters, digits, ".", "_" and "-"');
  });

  it('exits 1 on a missing or unreadable config file', async () => {
    const missing = await infra(['--config', path.join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.json');
    const broken = await infra(['--config', await configFile('broken.json', '{ "routes": [')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('not valid JSON');
  });

  it('refuses positional arguments and unknown options', async () => {
    await expect(infra(['extra'])).rejects.toThrow('infra takes no positional arguments');
    await expect(infra(['--format', 'yaml'])).rejects.toMatchObject({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  });

  it(
    'tells the hub avrodeflate when the archive section asks for it',
    async () => {
      const file = await configFile('deflate.json', { iotHubName: 'contoso-routing-hub', archive: { encoding: 'avrodeflate', batchFrequencySeconds: 60 } });
      const run = await infra(['--config', file]);
      expect(run.code).toBe(0);
      const template = JSON.parse(run.stdout) as ArmTemplate;
      const hub = template.resources.find((r) => r.type === 'Microsoft.Devices/IotHubs') as unknown as {
        properties: { routing: { endpoints: { storageContainers: Array<Record<string, unknown>> } } };
      };
      expect(hub.properties.routing.endpoints.storageContainers[0]).toMatchObject({ encoding: 'AvroDeflate', batchFrequencyInSeconds: 60 });
    },
  );

  describe('through the iot-routing entry point', () => {
    it('runs as "iot-routing infra"', async () => {
      const run = await runCli(['infra', '--config', shippedConfig]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ variables: { iotHubName: 'ContosoTestHub' } });
      const usage = await runCli(['infra', '--bogus']);
      expect(usage.code).toBe(1);
    });
  });
});
