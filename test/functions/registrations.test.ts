import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/lib/config.js';
import { captureRegistrations, type Registration } from '../support/registrations.js';

const expectedFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'registrations.expected.json');

/** What the host receives for one function, minus the handler itself: the contract with the Functions host. */
function describeRegistration(r: Registration): Record<string, unknown> {
  const { handler: _handler, ...options } = r.options;
  return { kind: r.kind, name: r.name, ...JSON.parse(JSON.stringify(options)) };
}

let actual: Array<Record<string, unknown>>;
beforeAll(async () => {
  // The archive trigger's source is chosen from this setting when the module loads: pin the local default.
  delete process.env['ARCHIVE_TRIGGER_SOURCE'];
  const { registrations } = await captureRegistrations();
  actual = registrations.map(describeRegistration).sort((a, b) => String(a['name']).localeCompare(String(b['name'])));
});

describe('function registrations', () => {
  it('hand the host exactly the triggers, settings, retry policies, routes and auth levels checked into the repo', async () => {
    // Regenerate deliberately with UPDATE_REGISTRATIONS=1 after an intended change, and review the diff.
    if (process.env['UPDATE_REGISTRATIONS'] === '1') await writeFile(expectedFile, `${JSON.stringify(actual, null, 2)}\n`);
    const expected = JSON.parse(await readFile(expectedFile, 'utf8')) as unknown;
    expect(actual).toEqual(expected);
  });

  it('use only settings the app documents, and function keys on every HTTP route but the dashboard page', () => {
    const known = new Set<string>(SETTINGS.map((s) => s.name));
    for (const registration of actual) {
      for (const [key, value] of Object.entries(registration)) {
        if (typeof value !== 'string') continue;
        for (const match of value.matchAll(/%([A-Za-z0-9_]+)%/g)) expect(known, `${registration['name']}.${key}`).toContain(match[1]);
        if (key === 'connection') expect(known, `${registration['name']}.connection`).toContain(value);
      }
      // The dashboard page holds no data and no secret (ADR 0012): alert e-mails link to it without a key.
      if (registration['kind'] === 'http') expect(registration['authLevel'], String(registration['name'])).toBe(registration['name'] === 'dashboard' ? 'anonymous' : 'function');
    }
  });

  it('give the Event Hubs trigger a batch of raw bytes and an exponential back-off', () => {
    const stream = actual.find((r) => r['kind'] === 'eventHub');
    expect(stream).toMatchObject({ cardinality: 'many', dataType: 'binary', retry: { strategy: 'exponentialBackoff' } });
  });
});
