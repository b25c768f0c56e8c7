import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { processAlertServices } from '../lib/alerts/alertServices.js';
import { verifyStoredConfiguration } from '../lib/aggregate/telemetryStream.js';
import { healthReport } from '../lib/health.js';
import { processServices } from '../lib/runtime.js';
import { APP_VERSION } from '../lib/version.js';

export async function health(_request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  const report = await healthReport(processServices, processAlertServices, verifyStoredConfiguration, APP_VERSION);
  return { status: report.status, jsonBody: report.body };
}

app.http('health', { methods: ['GET'], authLevel: 'function', route: 'health', handler: health });
