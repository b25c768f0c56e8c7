/**
 * GET /api/dashboard (the page) and GET /api/dashboard/data (its numbers as JSON). Everything else is
 * `createDashboardHandlers` in src/lib/dashboard.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { createDashboardHandlers, type DashboardResponse } from '../lib/dashboard/dashboardEndpoint.js';
import { processServices } from '../lib/runtime.js';

const handlers = createDashboardHandlers(processServices);

function toHttp(response: DashboardResponse): HttpResponseInit {
  return { status: response.status, headers: response.headers, body: response.body };
}

export async function dashboardPage(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  return toHttp(await handlers.page(new URL(request.url).pathname));
}

export async function dashboardData(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  // From the URL, not request.query: that can hold one value per name (the host's dictionary, or a local host's),
  // and deviceId repeats.
  return toHttp(await handlers.data(new URL(request.url).searchParams));
}

// The page is the one route without a function key. It holds no data (every number comes from dashboard/data,
// which needs the key) and nothing secret, and alert e-mails link to it: a key in those links would travel with
// every forwarded e-mail and open the archive to whoever holds one. Opened without a key, the page asks for one
// and sends it with each data call. ADR 0012.
app.http('dashboard', { methods: ['GET'], authLevel: 'anonymous', route: 'dashboard', handler: dashboardPage });
app.http('dashboardData', { methods: ['GET'], authLevel: 'function', route: 'dashboard/data', handler: dashboardData });
