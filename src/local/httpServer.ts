/**
 * The HTTP front of the local host: a node:http server that routes `/<routePrefix>/<route>` (prefix `api`, as the
 * host's default) to the `app.http` registration with that route template and method, builds the request the
 * library would (`new HttpRequest({ method, url, headers, query, params, body })`), and writes back what the
 * handler returned: an `HttpResponseInit` is turned into an `HttpResponse` exactly as the library does before
 * handing it to the host, then status, headers, cookies and the body (streamed) are written.
 *
 * Route templates follow the host's (ASP.NET) syntax: literal segments match ignoring case, `{name}` binds one
 * segment, `{name?}` is optional, `{name:int}` (also `alpha`, `bool`, `guid`, `long`, `double`) constrains it,
 * `{*rest}` binds the remainder. More specific templates win: literals before parameters, catch-alls last.
 *
 * Keys: `authLevel: 'function'` and `'admin'` routes accept any request, as under `func start`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import functions from '@azure/functions';
import type { FunctionLogger } from './invoke.js';
import { invokeRegistration } from './invoke.js';
import type { Registration } from './registrations.js';

interface RouteSegment {
  kind: 'literal' | 'param' | 'catchAll';
  regex: RegExp;
  names: string[];
  optional: boolean;
}

export interface HttpRoute {
  registration: Registration;
  template: string;
  methods: string[];
  authLevel: string;
  segments: RouteSegment[];
  /** Lower sorts first. */
  rank: number[];
}

const CONSTRAINTS: Readonly<Record<string, string>> = {
  int: '-?\\d+',
  long: '-?\\d+',
  alpha: '[A-Za-z]+',
  bool: '(?:true|false|True|False|TRUE|FALSE)',
  guid: '[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}',
  double: '-?\\d+(?:\\.\\d+)?',
  float: '-?\\d+(?:\\.\\d+)?',
  decimal: '-?\\d+(?:\\.\\d+)?',
};

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function compileSegment(text: string): RouteSegment {
  const catchAll = /^\{\*([^}:]+)(?::[^}]*)?\}$/.exec(text);
  if (catchAll !== null) return { kind: 'catchAll', regex: /^(.*)$/s, names: [catchAll[1]!], optional: true };
  const names: string[] = [];
  let optional = false;
  let pattern = '';
  let last = 0;
  for (const match of text.matchAll(/\{([^{}]+)\}/g)) {
    pattern += escapeRegex(text.slice(last, match.index));
    let spec = match[1]!;
    if (spec.endsWith('?')) {
      optional = true;
      spec = spec.slice(0, -1);
    }
    const [name = '', ...constraints] = spec.split('=')[0]!.split(':');
    names.push(name);
    const constraint = constraints.map((c) => CONSTRAINTS[c.replace(/\(.*\)$/, '')]).find((c) => c !== undefined);
    pattern += `(${constraint ?? '[^/]+'})`;
    last = match.index + match[0].length;
  }
  pattern += escapeRegex(text.slice(last));
  return {
    kind: names.length === 0 ? 'literal' : 'param',
    regex: new RegExp(`^${pattern}$`, names.length === 0 ? 'i' : ''),
    names,
    optional,
  };
}

export function compileHttpRoute(registration: Registration): HttpRoute {
  const template = String(registration.options['route'] ?? registration.name).replace(/^\/+|\/+$/g, '');
  const segments = template === '' ? [] : template.split('/').map(compileSegment);
  const methods = ((registration.options['methods'] as string[] | undefined) ?? ['GET', 'POST']).map((m) => m.toUpperCase());
  return {
    registration,
    template,
    methods,
    authLevel: String(registration.options['authLevel'] ?? 'anonymous'),
    segments,
    rank: segments.map((s) => (s.kind === 'literal' ? 0 : s.kind === 'param' ? (s.optional ? 2 : 1) : 3)),
  };
}

function compareRoutes(a: HttpRoute, b: HttpRoute): number {
  for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
    const x = a.rank[i] ?? -1;
    const y = b.rank[i] ?? -1;
    if (x !== y) return x - y;
  }
  return a.template.localeCompare(b.template);
}

/** The route parameters when `path` (below the prefix, no leading slash) matches the template, else null. */
export function matchRoute(route: HttpRoute, path: string): Record<string, string> | null {
  const parts = path === '' ? [] : path.split('/');
  const params: Record<string, string> = {};
  let i = 0;
  for (const segment of route.segments) {
    if (segment.kind === 'catchAll') {
      const rest = parts.slice(i).join('/');
      if (rest !== '') params[segment.names[0]!] = decodeURIComponent(rest);
      return params;
    }
    const part = parts[i];
    if (part === undefined) {
      if (segment.optional) continue;
      return null;
    }
    const matched = segment.regex.exec(decodeURIComponent(part));
    if (matched === null) return null;
    segment.names.forEach((name, n) => (params[name] = matched[n + 1]!));
    i++;
  }
  return i === parts.length ? params : null;
}

export interface LocalHttpServer {
  server: Server;
  port: number;
  baseUrl: string;
  routes: HttpRoute[];
  close(): Promise<void>;
}

export interface HttpServerOptions {
  registrations: readonly Registration[];
  port: number;
  host?: string;
  routePrefix?: string;
  logger: FunctionLogger;
  onRequest?(route: HttpRoute | null, status: number): void;
}

export async function startHttpServer(options: HttpServerOptions): Promise<LocalHttpServer> {
  const routes = options.registrations.filter((r) => r.kind === 'http').map(compileHttpRoute).sort(compareRoutes);
  const prefix = (options.routePrefix ?? 'api').replace(/^\/+|\/+$/g, '');
  const host = options.host ?? '127.0.0.1';
  let baseUrl = '';

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.logger.log('http', '-', 'error', [`request ${req.method ?? ''} ${req.url ?? ''} failed: ${String(error)}`]);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', baseUrl);
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname.replace(/^\/+|\/+$/g, '');
    const below = prefix === '' ? path : path.toLowerCase() === prefix.toLowerCase() ? '' : path.toLowerCase().startsWith(`${prefix.toLowerCase()}/`) ? path.slice(prefix.length + 1) : null;
    const candidates = below === null ? [] : routes.map((route) => ({ route, params: matchRoute(route, below) })).filter((c) => c.params !== null);
    const chosen = candidates.find((c) => c.route.methods.includes(method));
    if (chosen === undefined) {
      const status = candidates.length > 0 ? 405 : 404;
      options.onRequest?.(null, status);
      res.writeHead(status, candidates.length > 0 ? { allow: [...new Set(candidates.flatMap((c) => c.route.methods))].join(', ') } : {});
      res.end();
      return;
    }
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
    }
    const request = new functions.HttpRequest({
      method,
      url: url.toString(),
      headers,
      query: hostQuery(url.searchParams),
      params: chosen.params ?? {},
      ...(body.byteLength > 0 ? { body: { bytes: body } } : {}),
    });
    let result: unknown;
    try {
      result = await invokeRegistration(chosen.route.registration, request, options.logger);
    } catch (error) {
      options.logger.log(chosen.route.registration.name, '-', 'error', [error]);
      options.onRequest?.(chosen.route, 500);
      res.writeHead(500);
      res.end();
      return;
    }
    await writeResponse(res, result, method);
    options.onRequest?.(chosen.route, res.statusCode);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`;
  return {
    server,
    port,
    baseUrl,
    routes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * `request.query` as the Functions host builds it: one value per name, a repeated parameter's values joined with
 * commas (`?deviceId=a&deviceId=b` gives `deviceId: "a,b"`; Azure/azure-functions-nodejs-library#168). Handlers
 * that take repeated parameters read them from `request.url` instead; this keeps the local host as lossy as Azure's,
 * so that one that does not is caught here and not in production.
 */
export function hostQuery(params: URLSearchParams): Record<string, string> {
  const joined = new Map<string, string>();
  for (const [key, value] of params) {
    const before = joined.get(key);
    joined.set(key, before === undefined ? value : `${before},${value}`);
  }
  // fromEntries: a parameter named `__proto__` stays an ordinary key.
  return Object.fromEntries(joined);
}

function cookieHeader(cookie: functions.Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain !== undefined) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path !== undefined) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure === true) parts.push('Secure');
  if (cookie.httpOnly === true) parts.push('HttpOnly');
  if (cookie.sameSite !== undefined) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}

/** The library's own conversion (`toRpcHttp`): an object that is not an HttpResponse becomes one. */
async function writeResponse(res: ServerResponse, result: unknown, method: string): Promise<void> {
  if (result === undefined || result === null) {
    // No response object: the host answers with no content.
    res.writeHead(204);
    res.end();
    return;
  }
  if (typeof result !== 'object') throw new Error('The HTTP response must be an object with optional properties "body", "status", "headers", and "cookies".');
  const response = result instanceof functions.HttpResponse ? result : new functions.HttpResponse(result as functions.HttpResponseInit);
  const headers: Record<string, string | string[]> = {};
  for (const [key, value] of response.headers.entries()) headers[key] = value;
  if (response.cookies.length > 0) headers['set-cookie'] = response.cookies.map(cookieHeader);
  res.writeHead(response.status, headers);
  const body = response.body;
  if (body === null || method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = Readable.fromWeb(body as unknown as WebReadableStream<Uint8Array>);
    stream.once('error', reject);
    res.once('finish', resolve);
    res.once('close', resolve);
    stream.pipe(res);
  });
}
