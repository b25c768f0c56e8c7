/**
 * The commands that read blob storage, run through the CLI's entry (`main`) with storage unreachable: a connection
 * string to a loopback port nothing listens on. A transient failure is the user's to retry, not a crash: one line
 * on stderr naming what failed and what to do, exit 4 (EXIT.transient), no stack trace. The storage clients' retries
 * are shortened as test/storage/azureBlobStore.test.ts shortens them, so that each run takes well under a second
 * instead of the SDK's default back-off of some fifteen seconds.
 *
 * Storage that answers and refuses the credentials (Azurite, a wrong account key) is the user's to fix: one line
 * naming the refusal and the connection to check, exit 1 (EXIT.usage, as a configuration error), no stack trace.
 * Storage that answers with a blob that is not the document a command reads is neither: the account accepted the
 * credentials, so the line names the blob and says so, without sending the user to check the account key.
 */
import type { StoragePipelineOptions } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { AZURITE_ACCOUNT_KEY, azuriteConnectionString, uniqueContainerName, useAzurite } from '../support/azurite.js';
import { runCommand, type CliRun } from '../support/cli.js';
import { closedPort } from '../support/listening.js';

const FAST_FAIL: StoragePipelineOptions = { retryOptions: { maxTries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 20, tryTimeoutInMs: 2_000 } };

function cli(args: string[], env: Record<string, string>, storagePipeline: StoragePipelineOptions = FAST_FAIL) {
  return runCommand((argv, io) => main(argv, { ...io, storagePipeline }), args, env);
}

/** The one line a command wrote on stderr, and nothing on stdout: what every case here must end with. */
function oneLine(run: CliRun): string {
  expect(run.stdout).toBe('');
  const lines = run.stderr.split('\n');
  expect(lines, run.stderr).toHaveLength(2);
  expect(lines[1]).toBe('');
  return lines[0]!;
}

const azurite = useAzurite();

let port: number;
let unreachable: string;

beforeAll(async () => {
  port = await closedPort();
  unreachable = azuriteConnectionString(`http://127.0.0.1:${port}/devstoreaccount1`);
});

describe('a command whose storage does not answer', () => {
  const cases: Array<{ command: string; args: () => string[]; env: () => Record<string, string>; settings: RegExp }> = [
    {
      command: 'reports',
      args: () => ['reports', '--from', '2024-03-01'],
      env: () => ({ AzureWebJobsStorage: unreachable }),
      settings: /check AzureWebJobsStorage /,
    },
    {
      command: 'query',
      args: () => ['query', '--connection-string', unreachable, '--container', 'archive', '--from', '2024-03-01T10:00:00Z', '--to', '2024-03-01T11:00:00Z'],
      env: () => ({}),
      settings: /check --connection-string \(else AzureWebJobsStorage\) /,
    },
    {
      command: 'quarantine',
      args: () => ['quarantine', 'list'],
      env: () => ({ AzureWebJobsStorage: unreachable }),
      settings: /check --connection-string \(else AzureWebJobsStorage\) /,
    },
  ];

  it.each(cases)(
    '$command says what failed and to retry, in one line, and exits 4',
    async ({ command, args, env, settings }) => {
      const run = await cli(args(), env());
      expect(run.code, run.stderr).toBe(4);
      const line = oneLine(run);
      expect(line).toMatch(new RegExp(`^iot-routing ${command}: Blob storage \\w+ .* failed: .*ECONNREFUSED.*127\\.0\\.0\\.1:${port}`));
      expect(line).toMatch(settings);
      expect(line).toMatch(/and that the storage account is reachable, then run the command again$/);
      // The account key is in the connection string: it never reaches the terminal.
      expect(line).not.toContain('Eby8vdM02x');
    },
    10_000,
  );

  it.each(cases)(
    '$command says the account refused the credentials, in one line, and exits 1',
    async ({ command, args, env, settings }) => {
      // Azurite answers, and refuses a signature made with another key: 403 AuthorizationFailure, as Azure does.
      const wrongKey = Buffer.alloc(64, 7).toString('base64');
      const refused = (value: string) => value.replaceAll(unreachable, azurite().connectionString.replace(AZURITE_ACCOUNT_KEY, wrongKey));
      const run = await cli(args().map(refused), Object.fromEntries(Object.entries(env()).map(([k, v]) => [k, refused(v)])));
      expect(run.code, run.stderr).toBe(1);
      const line = oneLine(run);
      expect(line).toMatch(new RegExp(`^iot-routing ${command}: Blob storage \\w+ .* failed: 403 AuthorizationFailure; `));
      expect(line).toMatch(settings);
      expect(line).toMatch(/the storage account refused the request/);
      expect(line).not.toContain(wrongKey);
      // Not read as a damaged record to delete (reports checks the container's base-window record first).
      expect(line).not.toContain('base window record');
    },
    10_000,
  );

  it('still throws a defect, so the process shows its stack and exits 1', async () => {
    // An HTTP client that fails as code with a bug does: not a storage failure, and not to be read as one.
    const broken: StoragePipelineOptions = {
      httpClient: {
        sendRequest: () => {
          throw new TypeError("Cannot read properties of undefined (reading 'headers')");
        },
      },
    };
    await expect(cli(['quarantine', 'list'], { AzureWebJobsStorage: unreachable }, broken)).rejects.toThrow(TypeError);
  });
});

describe('a command that reads a stored document that does not decode', () => {
  it('names the blob in one line, does not blame the credentials the account accepted, and exits 1', async () => {
    // Another tool (or a hand edit) left a blob in the quarantine container that is not a quarantine record.
    const container = uniqueContainerName('quarantine');
    const name = 'messages/events/2024-05-01/m-1.json';
    const store = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString }));
    await store.ensureContainer(container);
    await store.put(container, name, Buffer.from('{"kind": "message", "reasons": [', 'utf8'));

    const run = await cli(['quarantine', 'show', name, '--container', container], { AzureWebJobsStorage: azurite().connectionString });
    expect(run.code, run.stderr).toBe(1);
    const line = oneLine(run);
    expect(line).toMatch(new RegExp(`^iot-routing quarantine: Blob ${container}/${name} is not valid JSON; `));
    expect(line).toMatch(/the storage account answered with a blob that is not a document iot-routing reads/);
    expect(line).not.toMatch(/refused|account key|SAS/);
  });
});
