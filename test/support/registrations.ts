import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { app } from '@azure/functions';
import { vi } from 'vitest';

export type TriggerKind = 'http' | 'eventHub' | 'serviceBusQueue' | 'storageBlob' | 'eventGrid' | 'timer';
const KINDS: readonly TriggerKind[] = ['http', 'eventHub', 'serviceBusQueue', 'storageBlob', 'eventGrid', 'timer'];

export interface Registration {
  kind: TriggerKind;
  name: string;
  options: Record<string, unknown> & { handler: (...args: unknown[]) => unknown };
}

const functionsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/functions');

/**
 * Imports every module in src/functions with the `app.*` registration methods replaced by recorders, and returns
 * exactly what each call handed the host. The handlers are the real ones; only the hand-over to the host (which
 * does not run here) is intercepted. `setup` calls are recorded too.
 */
export async function captureRegistrations(): Promise<{ registrations: Registration[]; setup: unknown[] }> {
  const registrations: Registration[] = [];
  const setup: unknown[] = [];
  for (const kind of KINDS) {
    vi.spyOn(app, kind).mockImplementation(((name: string, options: Registration['options']) => {
      registrations.push({ kind, name, options });
    }) as never);
  }
  vi.spyOn(app, 'setup').mockImplementation((options: unknown) => {
    setup.push(options);
  });
  const files = (await readdir(functionsDir)).filter((f) => f.endsWith('.ts')).sort();
  for (const file of files) await import(pathToFileURL(path.join(functionsDir, file)).href);
  return { registrations, setup };
}

export function registration(registrations: readonly Registration[], name: string): Registration {
  const found = registrations.find((r) => r.name === name);
  if (found === undefined) throw new Error(`no function registered as ${name}; have ${registrations.map((r) => r.name).join(', ')}`);
  return found;
}
