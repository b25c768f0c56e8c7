import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ReadableStream } from 'node:stream/web';
import { app, HttpResponse, InvocationContext, type HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileHttpRoute, hostQuery, matchRoute, startHttpServer, type LocalHttpServer } from '../../src/local/httpServer.js';
import { invokeRegistration, retryPolicyOf, type FunctionLogger } from '../../src/local/invoke.js';
import { loadRegistrations, type Registration } from '../../src/local/registrations.js';

const logs: Array<{ name: string; level: string; text: string }> = [];
const logger: FunctionLogger = { log: (name, _id, level, args) => logs.push({ name, level, text: args.map(String).join(' ') }) };

function http(name: string, options: Record<string, unknown>, handler: (request: HttpRequest, context: InvocationContext) => unknown): Registration {
  return { kind: 'http', name, file: `${name}.js`, options: { ...options, handler: handler as Registration['options']['handler'] } };
}

describe('function registrations', () => {
  let directory: string;
  beforeAll(async () => {
    // Inside node_modules so that the modules resolve @azure/functions as the app's own modules do.
    await mkdir(path.join('node_modules', '.cache'), { recursive: true });
    directory = await mkdtemp(path.resolve('node_modules', '.cache', 'local-registrations-'));
    await writeFile(
      path.join(directory, 'a.mjs'),
      `import { app } from '@azure/functions';
       app.get('items', { route: 'items/{id}', handler: async () => ({ status: 200 }) });
       app.timer('tick', { schedule: '0 * * * * *', retry: { strategy: 'fixedDelay', maxRetryCount: 2, delayInterval: { seconds: 5 } }, handler: async () => {} });`,
    );
    await writeFile(
      path.join(directory, 'b.mjs'),
      `import { app } from '@azure/functions';
       app.eventHub('stream', { connection: 'C', eventHubName: '%HUB%', cardinality: 'many', handler: async () => 'done' });
       app.cosmosDB('changes', { connection: 'C', databaseName: 'd', containerName: 'c', handler: async () => {} });`,
    );
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('records every app.* call of the real modules, folding the HTTP shorthands into http, and restores app', async () => {
    const original = app.http;
    const registrations = await loadRegistrations({ directory, extension: '.mjs' });
    expect(registrations.map((r) => [r.kind, r.name, r.file])).toEqual([
      ['http', 'items', 'a.mjs'],
      ['timer', 'tick', 'a.mjs'],
      ['eventHub', 'stream', 'b.mjs'],
      ['cosmosDB', 'changes', 'b.mjs'],
    ]);
    expect(registrations[0]!.options).toMatchObject({ methods: ['GET'], route: 'items/{id}' });
    expect(app.http).toBe(original);
    // Imported once per process: asking again gives the same registrations instead of none.
    expect(await loadRegistrations({ directory, extension: '.mjs' })).toBe(registrations);

    expect(retryPolicyOf(registrations[1]!)).toMatchObject({ maxRetryCount: 2 });
    expect(retryPolicyOf(registrations[1]!)!.delayMs(3)).toBe(5_000);
    expect(retryPolicyOf(registrations[2]!)).toBeNull();
  });

  it('invokes a handler with a real InvocationContext carrying the trigger, metadata and retry context', async () => {
    const registrations = await loadRegistrations({ directory, extension: '.mjs' });
    const stream = registrations.find((r) => r.name === 'stream')!;
    let seen: InvocationContext | undefined;
    const probe: Registration = {
      ...stream,
      options: {
        ...stream.options,
        handler: (_input: unknown, context: unknown) => {
          seen = context as InvocationContext;
          seen.warn('careful');
          return 'ok';
        },
      },
    };
    const result = await invokeRegistration(probe, [], logger, {
      triggerMetadata: { partitionContext: { partitionId: '1' } },
      retryContext: { retryCount: 1, maxRetryCount: -1 },
    });
    expect(result).toBe('ok');
    expect(seen).toBeInstanceOf(InvocationContext);
    expect(seen!.functionName).toBe('stream');
    expect(seen!.invocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen!.triggerMetadata).toEqual({ partitionContext: { partitionId: '1' } });
    expect(seen!.retryContext).toEqual({ retryCount: 1, maxRetryCount: -1 });
    expect(seen!.options.trigger).toMatchObject({ type: 'eventHubTrigger', eventHubName: '%HUB%', cardinality: 'many' });
    expect(logs).toContainEqual({ name: 'stream', level: 'warning', text: 'careful' });
  });

  it("loads the app's own function modules from src/functions", async () => {
    const registrations = await loadRegistrations();
    expect(registrations.find((r) => r.name === 'health')).toMatchObject({ kind: 'http', options: { route: 'health', methods: ['GET'] } });
  });
});

describe('HTTP routes', () => {
  it('match templates as the host does: literals ignoring case, parameters, constraints, optional and catch-all', () => {
    const route = (template: string) => compileHttpRoute(http('f', { route: template }, () => undefined));
    expect(matchRoute(route('reports'), 'Reports')).toEqual({});
    expect(matchRoute(route('items/{id:int}'), 'items/42')).toEqual({ id: '42' });
    expect(matchRoute(route('items/{id:int}'), 'items/abc')).toBeNull();
    expect(matchRoute(route('items/{id?}'), 'items')).toEqual({});
    expect(matchRoute(route('files/{*rest}'), 'files/a/b%20c')).toEqual({ rest: 'a/b c' });
    expect(matchRoute(route('a/{x}-{y}'), 'a/1-2')).toEqual({ x: '1', y: '2' });
    expect(matchRoute(route('a/b'), 'a/b/c')).toBeNull();
    expect(compileHttpRoute(http('health', {}, () => undefined))).toMatchObject({ template: 'health', methods: ['GET', 'POST'], authLevel: 'anonymous' });
  });

  it("fill request.query as the host does: a repeated parameter's values joined with commas", () => {
    const query = hostQuery(new URLSearchParams('deviceId=a&q=1&deviceId=b&__proto__=x&deviceId='));
    expect(query).toEqual({ deviceId: 'a,b,', q: '1', ['__proto__']: 'x' });
    expect(Object.getPrototypeOf(query)).toBe(Object.prototype);
    expect(Object.hasOwn(query, '__proto__')).toBe(true);
  });

  describe('server', () => {
    let server: LocalHttpServer;
    beforeAll(async () => {
      server = await startHttpServer({
        port: 0,
        logger,
        registrations: [
          http('item', { route: 'items/{id:int}', methods: ['GET'], authLevel: 'function' }, (request) => ({
            jsonBody: { id: request.params['id'], q: request.query.get('q') },
            cookies: [{ name: 'seen', value: '1', httpOnly: true }],
          })),
          http('echo', { route: 'echo', methods: ['POST'] }, async (request) => new HttpResponse({ status: 201, body: `got ${await request.text()}`, headers: { 'x-echo': 'yes' } })),
          http('stream', { route: 'stream', methods: ['GET'] }, () => ({
            headers: { 'content-type': 'application/x-ndjson' },
            body: ReadableStream.from((async function* () {
              for (let i = 0; i < 3; i++) yield new TextEncoder().encode(`{"n":${i}}\n`);
            })()),
          })),
          http('nothing', { route: 'nothing', methods: ['DELETE'] }, () => undefined),
          http('broken', { route: 'broken', methods: ['GET'] }, () => {
            throw new Error('boom');
          }),
        ],
      });
    });
    afterAll(() => server.close());

    it('builds the HttpRequest (params, query, body) and writes back HttpResponseInit with cookies', async () => {
      const response = await fetch(`${server.baseUrl}/api/items/7?q=x`, { headers: { 'x-functions-key': 'anything' } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(response.headers.get('set-cookie')).toBe('seen=1; HttpOnly');
      expect(await response.json()).toEqual({ id: '7', q: 'x' });
    });

    it('writes back an HttpResponse, a streamed body and an empty result', async () => {
      const echo = await fetch(`${server.baseUrl}/api/echo`, { method: 'POST', body: 'hello' });
      expect([echo.status, echo.headers.get('x-echo'), await echo.text()]).toEqual([201, 'yes', 'got hello']);
      const stream = await fetch(`${server.baseUrl}/api/stream`);
      expect(await stream.text()).toBe('{"n":0}\n{"n":1}\n{"n":2}\n');
      expect((await fetch(`${server.baseUrl}/api/nothing`, { method: 'DELETE' })).status).toBe(204);
    });

    it('answers 404 for no route, 405 for another method, 500 when the function throws', async () => {
      expect((await fetch(`${server.baseUrl}/api/missing`)).status).toBe(404);
      expect((await fetch(`${server.baseUrl}/items/7`)).status).toBe(404);
      const wrongMethod = await fetch(`${server.baseUrl}/api/echo`);
      expect([wrongMethod.status, wrongMethod.headers.get('allow')]).toEqual([405, 'POST']);
      expect((await fetch(`${server.baseUrl}/api/broken`)).status).toBe(500);
      expect(logs.some((l) => l.name === 'broken' && l.level === 'error')).toBe(true);
    });
  });
});
