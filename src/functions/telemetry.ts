import { ReadableStream } from 'node:stream/web';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { telemetryDepsFromServices } from '../lib/archive/archiveDeps.js';
import { createTelemetryQueryHandler, type TelemetryQueryHandler } from '../lib/archive/telemetryQuery.js';
import { processServices, type Services } from '../lib/runtime.js';

/**
 * GET /api/telemetry: archive queries over HTTP (parameters in src/lib/archive/telemetryQuery.ts). The answer is
 * handed to the host as a stream; with `enableHttpStream` the worker sends it as it is produced, without it the
 * library collects the body first (still correct, only not incremental).
 */
export function telemetryHandler(getServices: () => Promise<Services> = processServices) {
  let cached: { services: Services; query: TelemetryQueryHandler } | undefined;
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const services = await getServices();
    if (cached?.services !== services) cached = { services, query: createTelemetryQueryHandler(telemetryDepsFromServices(services)) };
    // From the URL, not request.query, which holds one value per name: deviceId repeats.
    const response = await cached.query(new URL(request.url).searchParams);
    if (typeof response.body === 'string') return { status: response.status, headers: response.headers, body: response.body };
    return { status: response.status, headers: response.headers, body: toStream(response.body, context) };
  };
}

function toStream(body: AsyncIterable<string>, context: InvocationContext): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const iterator = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done === true) controller.close();
        else controller.enqueue(encoder.encode(next.value));
      } catch (error) {
        // The status line is gone already: cutting the stream is how the client learns the answer is incomplete
        // (NDJSON and JSON answers also lack their closing summary).
        context.error(`telemetry: the answer failed after it started: ${(error as Error).message}`);
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

// HTTP streaming (library 4.3+, host 4.28+) is app-wide; the telemetry answer is what needs it.
app.setup({ enableHttpStream: true });

app.http('telemetry', { methods: ['GET'], authLevel: 'function', route: 'telemetry', handler: telemetryHandler() });
