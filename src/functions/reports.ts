/**
 * GET /api/reports?deviceId=&from=&to=&window=&format=json|csv — windowed reports merged across partitions.
 * Validation, reading and rendering are `createReportsEndpoint` in src/lib/aggregate.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { reportsEndpointFromServices, type ReportsEndpoint } from '../lib/aggregate/reportsQuery.js';
import { processServices } from '../lib/runtime.js';

let endpoint: Promise<ReportsEndpoint> | undefined;

function reportsEndpoint(): Promise<ReportsEndpoint> {
  endpoint ??= processServices()
    .then(reportsEndpointFromServices)
    .catch((error: unknown) => {
      endpoint = undefined;
      throw error;
    });
  return endpoint;
}

export async function reports(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  // From the URL, not request.query, which holds one value per name: a repeated deviceId must be seen to be refused.
  const response = await (await reportsEndpoint())(new URL(request.url).searchParams);
  return { status: response.status, headers: response.headers, body: response.body };
}

app.http('reports', { methods: ['GET'], authLevel: 'function', route: 'reports', handler: reports });
