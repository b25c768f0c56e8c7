import { isRoutingError } from './errors.js';
import type { Services } from './runtime.js';

export interface HealthReport {
  status: 200 | 503;
  body: {
    status: 'ok' | 'misconfigured' | 'storage-unavailable';
    version: string;
    /** Configuration problems, as the one ConfigInvalid error lists them (setting names, never values). */
    problems?: string[];
    storage?: 'reachable' | 'unreachable';
  };
}

/**
 * What `GET /api/health` answers: whether the configuration is valid and storage answers. A misconfigured app
 * reports every problem at once so it is fixed in one pass.
 */
export async function healthReport(services: () => Promise<Services>, version: string): Promise<HealthReport> {
  let loaded: Services;
  try {
    loaded = await services();
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') {
      const problems = error.message.split('\n- ').slice(1);
      return { status: 503, body: { status: 'misconfigured', version, problems } };
    }
    throw error;
  }
  try {
    // One page of one blob: proves the connection and the credential without reading data.
    for await (const _ of loaded.store.list(loaded.config.settings.quarantineContainer, '', { pageSize: 1 })) break;
  } catch {
    return { status: 503, body: { status: 'storage-unavailable', version, storage: 'unreachable' } };
  }
  return { status: 200, body: { status: 'ok', version, storage: 'reachable' } };
}
