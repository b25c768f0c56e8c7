import { configProblems, isRoutingError } from './errors.js';
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
 * reports every problem at once so it is fixed in one pass: those of the app's settings and routing.config.json,
 * and, once those load, those only the alert path meets (no `alerts` section, `acs` without an ACS setting,
 * `notifyDevice` without the hub's service connection), which would otherwise show only as every critical alert
 * being abandoned until Service Bus dead-letters it. Once storage answers, `stored` checks the configuration
 * against what storage holds (the reports container's base window): ConfigInvalid there is misconfigured too.
 */
export async function healthReport(
  services: () => Promise<Services>,
  alerts: () => Promise<unknown>,
  stored: (services: Services) => Promise<void>,
  version: string,
): Promise<HealthReport> {
  const misconfigured = (error: unknown): HealthReport | undefined =>
    isRoutingError(error) && error.code === 'ConfigInvalid'
      ? { status: 503, body: { status: 'misconfigured', version, problems: configProblems(error) } }
      : undefined;
  let loaded: Services;
  try {
    loaded = await services();
    await alerts();
  } catch (error) {
    const report = misconfigured(error);
    if (report === undefined) throw error;
    return report;
  }
  try {
    // One page of one blob: proves the connection and the credential without reading data.
    for await (const _ of loaded.store.list(loaded.config.settings.quarantineContainer, '', { pageSize: 1 })) break;
    await stored(loaded);
  } catch (error) {
    return misconfigured(error) ?? { status: 503, body: { status: 'storage-unavailable', version, storage: 'unreachable' } };
  }
  return { status: 200, body: { status: 'ok', version, storage: 'reachable' } };
}
