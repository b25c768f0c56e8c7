/**
 * The dashboard's two HTTP answers, host-independent (the function adapters in src/functions/dashboard.ts only
 * translate requests and responses), both behind the function key:
 *
 *   GET dashboard        the page: HTML, stylesheet and script in one response (page.ts)
 *   GET dashboard/data   the numbers as JSON (dashboardData.ts)
 */
import { randomBytes } from 'node:crypto';
import { aggregationConfigOf, type AggregationConfig } from '../aggregate/aggregationConfig.js';
import { archiveFromServices, type ResolvedArchive } from '../archive/archiveDeps.js';
import { configProblems, isRoutingError, readFailure } from '../errors.js';
import type { Clock } from '../ports.js';
import type { Services } from '../runtime.js';
import { createDashboardDataSource, type DashboardDataSource, type DashboardLimits } from './dashboardData.js';
import { parseDashboardQuery } from './dashboardParams.js';
import { EtagCache } from './etagCache.js';
import { dashboardCsp, renderDashboardPage } from './page.js';

export interface DashboardResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Every answer: no MIME sniffing, and no Referer, since the page's own address carries the function key. */
const COMMON_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function pageHeaders(nonce: string): Record<string, string> {
  return {
    ...COMMON_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': dashboardCsp(nonce),
    'x-frame-options': 'DENY',
    // A cached copy would reuse its nonce; the page is small and loaded once per visit.
    'cache-control': 'no-store',
  };
}

const JSON_HEADERS: Readonly<Record<string, string>> = {
  ...COMMON_HEADERS,
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
};

/**
 * A fresh nonce per page. Random on purpose, unlike every identity in this product: a CSP nonce only protects the
 * page if an attacker cannot predict it.
 */
export function cspNonce(): string {
  return randomBytes(18).toString('base64');
}

export function pageResponse(pagePath: string, aggregation: AggregationConfig, nonce: string = cspNonce()): DashboardResponse {
  return { status: 200, headers: pageHeaders(nonce), body: renderDashboardPage(pagePath, aggregation, nonce) };
}

function problem(status: number, error: string, problems: readonly string[], headers: Record<string, string> = {}): DashboardResponse {
  return { status, headers: { ...JSON_HEADERS, ...headers }, body: `${JSON.stringify({ error, problems })}\n` };
}

export interface DashboardDataEndpointDeps {
  source: DashboardDataSource;
  aggregation: AggregationConfig;
  clock: Clock;
}

export type DashboardDataEndpoint = (params: Iterable<readonly [string, string]>) => Promise<DashboardResponse>;

export function createDashboardDataEndpoint(deps: DashboardDataEndpointDeps): DashboardDataEndpoint {
  return async (params) => {
    const parsed = parseDashboardQuery(params, deps.aggregation, deps.clock.now());
    if ('errors' in parsed) return problem(400, 'BadRequest', parsed.errors);
    try {
      return { status: 200, headers: { ...JSON_HEADERS }, body: `${JSON.stringify(await deps.source(parsed.value))}\n` };
    } catch (error) {
      // Misconfigured among them: the reports container was written with another base window (checked before reading).
      const failure = readFailure(error);
      if (failure === undefined) throw error;
      return problem(failure.status, failure.error, failure.problems, failure.headers);
    }
  };
}

export interface DashboardHandlers {
  page(pagePath: string): Promise<DashboardResponse>;
  data(params: Iterable<readonly [string, string]>): Promise<DashboardResponse>;
}

export interface DashboardHandlerOptions {
  /** Documents kept between requests (etagCache.ts). Default 4000. */
  cachedDocuments?: number;
  limits?: Partial<DashboardLimits>;
}

/**
 * The handlers over the process's services. A configuration error answers 503 instead of failing every request
 * with a 500: the data route names the problems (setting names and paths, never values: the same text
 * `GET /api/health` gives); the page, served without a key, points there.
 */
export function createDashboardHandlers(services: () => Promise<Services>, options: DashboardHandlerOptions = {}): DashboardHandlers {
  const cache = new EtagCache(options.cachedDocuments ?? 4000);
  let built: { services: Services; aggregation: AggregationConfig; data: DashboardDataEndpoint } | undefined;
  const load = async (): Promise<{ aggregation: AggregationConfig; data: DashboardDataEndpoint } | { problems: string[] }> => {
    let loaded: Services;
    try {
      loaded = await services();
    } catch (error) {
      if (isRoutingError(error) && error.code === 'ConfigInvalid') return { problems: configProblems(error) };
      throw error;
    }
    if (built?.services !== loaded) {
      const aggregation = aggregationConfigOf(loaded.config.routing);
      const source = createDashboardDataSource({
        store: loaded.store,
        clock: loaded.clock,
        aggregation,
        reportsContainer: loaded.config.settings.reportsContainer,
        alertsContainer: loaded.config.settings.alerts.container,
        quarantineContainer: loaded.config.settings.quarantineContainer,
        archive: archiveOf(loaded),
        cache,
        ...(options.limits === undefined ? {} : { limits: options.limits }),
      });
      built = { services: loaded, aggregation, data: createDashboardDataEndpoint({ source, aggregation, clock: loaded.clock }) };
    }
    return built;
  };
  return {
    async page(pagePath) {
      const ready = await load();
      if ('problems' in ready) {
        return { status: 503, headers: pageHeaders(cspNonce()), body: MISCONFIGURED_PAGE };
      }
      return pageResponse(pagePath, ready.aggregation);
    },
    async data(params) {
      const ready = await load();
      if ('problems' in ready) return problem(503, 'Misconfigured', ready.problems);
      return ready.data(params);
    },
  };
}

/** The archive as configured, or null when no archive container is set: the dashboard then skips that route. */
function archiveOf(services: Services): ResolvedArchive | null {
  try {
    return archiveFromServices(services);
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') return null;
    throw error;
  }
}

/**
 * The page is served without a key (see src/functions/dashboard.ts), so it names no problem: those are for
 * `GET /api/health` and the data route, which need the key.
 */
const MISCONFIGURED_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>IoT routing dashboard: configuration problems</title></head>
<body>
<h1>The app's configuration is invalid</h1>
<p>GET /api/health with a function key lists the app settings and routing.config.json entries to fix; then reload.</p>
</body>
</html>
`;
