/**
 * Loopback stand-in for the IoT Hub service REST API's twin reads, `GET /twins/{deviceId}?api-version=...` (device
 * twin) and `GET /twins/{deviceId}/modules/{moduleId}?api-version=...` (module twin), for testing the real
 * azure-iothub `Registry` through the product's adapter. A module twin is stored apart from its device's twin, as
 * IoT Hub keeps it (modules inherit nothing from the device twin), and a missing one is answered as IoT Hub answers:
 * 404 `ModuleNotFound` when the device exists, 404 `DeviceNotFound` when it does not.
 *
 * What it checks, so that a passing test means the SDK really talked HTTPS to "the hub":
 * - TLS with a certificate for the hub's host name (made at test time, trusted only by the redirected connections);
 * - the `Host` header is the hub's host name;
 * - `Authorization: SharedAccessSignature sr=...&sig=...&se=...&skn=...` is verified as IoT Hub does: the policy named
 *   by `skn` exists, `se` is in the future, `sr` covers the hub, and `sig` is the HMAC-SHA256, keyed by the policy's
 *   base64-decoded key, of the URL-encoded `sr`, a newline and `se`. A wrong key is answered 401;
 * - or `Authorization: Bearer <token>` for identity-based access, against tokens the test accepts;
 * - an `api-version` query parameter.
 *
 * Getting the real Registry here: `Registry` builds its own `https.Agent` and always connects to the connection
 * string's `HostName` on port 443 (the HTTPS path has no port setting, unlike the AMQP `Client`). While a stand-in
 * runs, {@link startIotHubTwinApi} therefore maps its host name to the loopback port one level below the SDK, in
 * `https.Agent.prototype.createConnection`, for that host name only: the same effect as a hosts-file entry plus a
 * port forward, confined to this test process and undone by `close()`. Product code has no hook for it. The host
 * name ends in `.test` (RFC 2606), so a connection that somehow escaped the mapping fails DNS instead of reaching a
 * real hub.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_STAND_IN_HOST = 'loopback-hub.azure-devices.test';

/** Whether the `openssl` command line is available to make the test certificate. */
export function hasOpenssl(): boolean {
  try {
    return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

export interface TestCertificate {
  key: string;
  cert: string;
}

/**
 * A throw-away self-signed certificate for `hostName`, valid for one day: a DNS name, or an IP address (Node checks
 * an IP host against an `IP:` subjectAltName). Node has no certificate builder, hence the openssl CLI; callers
 * should skip when {@link hasOpenssl} is false.
 */
export function createTestCertificate(hostName: string): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'iothub-standin-cert-'));
  const altName = isIP(hostName) === 0 ? `DNS:${hostName}` : `IP:${hostName}`;
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', `/CN=${hostName}`, '-addext', `subjectAltName=${altName}`,
        '-keyout', keyPath, '-out', certPath,
      ],
      { stdio: 'pipe' },
    );
    return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TwinSeed {
  tags?: Record<string, unknown>;
  desired?: Record<string, unknown>;
  reported?: Record<string, unknown>;
}

export interface IotHubTwinApiOptions {
  hostName?: string;
  /** Shared access policies by name, each with a base64 key. Default: `registryRead` with a random key. */
  policies?: Record<string, string>;
  /** Bearer tokens to accept (identity-based access). */
  bearerTokens?: readonly string[];
  twins?: Record<string, TwinSeed>;
  /** Module twins by device id, then module id. Their devices are registered too (with an empty twin if absent). */
  moduleTwins?: Record<string, Record<string, TwinSeed>>;
  /** Made with {@link createTestCertificate} when absent. */
  certificate?: TestCertificate;
}

export type Authentication = 'sas' | 'bearer' | 'none';

export interface RecordedRequest {
  method: string;
  pathname: string;
  host: string | undefined;
  deviceId: string | undefined;
  /** Set for a module twin read. */
  moduleId: string | undefined;
  apiVersion: string | null;
  authentication: Authentication;
  /** Why authentication failed, when it did. */
  rejection: string | undefined;
  status: number;
}

export interface InjectedFault {
  /** 404 answers as for a hub that does not exist (`IotHubNotFound`), not as for a missing twin. */
  status: 404 | 429 | 500 | 503;
  /** How many of the next authorized twin requests get this answer. Default 1. */
  count?: number;
  retryAfterSeconds?: number;
}

export interface IotHubTwinApi {
  readonly hostName: string;
  readonly port: number;
  /** The certificate the server presents; already trusted for connections to {@link hostName}. */
  readonly certificate: TestCertificate;
  /** A service connection string for `keyName` (default: the first policy), optionally with a different key. */
  connectionString(options?: { keyName?: string; key?: string }): string;
  setTwin(deviceId: string, seed: TwinSeed): void;
  /** Sets a module's twin, registering the module (and its device, with an empty twin, if it has none). */
  setModuleTwin(deviceId: string, moduleId: string, seed: TwinSeed): void;
  /** Deletes the device with its modules. */
  deleteDevice(deviceId: string): void;
  deleteModule(deviceId: string, moduleId: string): void;
  /** Answers the next authorized twin requests with an error instead of the twin. */
  failNext(fault: InjectedFault): void;
  readonly requests: readonly RecordedRequest[];
  /**
   * Twin reads that passed authentication, whatever they answered: all of them, those for one device (its own twin
   * and its modules'), or, with `moduleId`, those of one module's twin.
   */
  twinReads(deviceId?: string, moduleId?: string): number;
  close(): Promise<void>;
}

export async function startIotHubTwinApi(options: IotHubTwinApiOptions = {}): Promise<IotHubTwinApi> {
  const hostName = (options.hostName ?? DEFAULT_STAND_IN_HOST).toLowerCase();
  const policies = options.policies ?? { registryRead: randomBytes(32).toString('base64') };
  const bearerTokens = new Set(options.bearerTokens ?? []);
  const certificate = options.certificate ?? createTestCertificate(hostName);
  const twins = new Map<string, StoredTwin>();
  /** Module twins by device id, then module id: kept apart from the device twins, as the hub keeps them. */
  const moduleTwins = new Map<string, Map<string, StoredTwin>>();
  const setModuleTwin = (deviceId: string, moduleId: string, seed: TwinSeed): void => {
    if (!twins.has(deviceId)) twins.set(deviceId, storedTwin({}, 1));
    const modules = moduleTwins.get(deviceId) ?? new Map<string, StoredTwin>();
    modules.set(moduleId, storedTwin(seed, (modules.get(moduleId)?.version ?? 0) + 1));
    moduleTwins.set(deviceId, modules);
  };
  for (const [deviceId, seed] of Object.entries(options.twins ?? {})) twins.set(deviceId, storedTwin(seed, 1));
  for (const [deviceId, modules] of Object.entries(options.moduleTwins ?? {})) {
    for (const [moduleId, seed] of Object.entries(modules)) setModuleTwin(deviceId, moduleId, seed);
  }
  const faults: Array<InjectedFault & { remaining: number }> = [];
  const requests: RecordedRequest[] = [];

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', `https://${hostName}`);
    const match = /^\/twins\/([^/]+)(?:\/modules\/([^/]+))?$/.exec(url.pathname);
    const record: RecordedRequest = {
      method: req.method ?? '',
      pathname: url.pathname,
      host: req.headers.host,
      deviceId: match?.[1] === undefined ? undefined : decodeURIComponent(match[1]),
      moduleId: match?.[2] === undefined ? undefined : decodeURIComponent(match[2]),
      apiVersion: url.searchParams.get('api-version'),
      authentication: 'none',
      rejection: undefined,
      status: 0,
    };
    requests.push(record);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        ...headers,
      });
      res.end(text);
    };

    const auth = authenticate(req.headers.authorization, hostName, policies, bearerTokens);
    record.authentication = auth.authentication;
    if (!auth.ok) {
      record.rejection = auth.reason;
      reply(401, errorBody('IotHubUnauthorizedAccess', 'Unauthorized'), { 'iothub-errorcode': 'IotHubUnauthorizedAccess' });
      return;
    }
    if (req.headers.host?.toLowerCase() !== hostName) {
      reply(400, errorBody('ArgumentInvalid', `Host header '${String(req.headers.host)}' does not name this hub`));
      return;
    }
    if (record.apiVersion === null) {
      reply(400, errorBody('InvalidProtocolVersion', 'api-version is required'));
      return;
    }
    if (req.method !== 'GET' || record.deviceId === undefined) {
      reply(405, errorBody('InvalidOperation', `${String(req.method)} ${url.pathname} is not served by this stand-in`));
      return;
    }

    const fault = faults[0];
    if (fault !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) faults.shift();
      const code = { 404: 'IotHubNotFound', 429: 'ThrottlingException', 500: 'ServerError', 503: 'ServiceUnavailable' }[fault.status];
      reply(fault.status, errorBody(code, 'Injected by the test'), {
        'iothub-errorcode': code,
        ...(fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) }),
      });
      return;
    }

    const deviceTwin = twins.get(record.deviceId);
    if (deviceTwin === undefined) {
      reply(404, errorBody('DeviceNotFound', `Device ${record.deviceId} not registered`), {
        'iothub-errorcode': 'DeviceNotFound',
      });
      return;
    }
    if (record.moduleId === undefined) {
      reply(200, twinJson(record.deviceId, undefined, deviceTwin), { etag: `"${deviceTwin.etag}"` });
      return;
    }
    const moduleTwin = moduleTwins.get(record.deviceId)?.get(record.moduleId);
    if (moduleTwin === undefined) {
      reply(404, errorBody('ModuleNotFound', `Module ${record.moduleId} on device ${record.deviceId} not registered`), {
        'iothub-errorcode': 'ModuleNotFound',
      });
      return;
    }
    reply(200, twinJson(record.deviceId, record.moduleId, moduleTwin), { etag: `"${moduleTwin.etag}"` });
  };

  const server = https.createServer({ key: certificate.key, cert: certificate.cert }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const unmap = mapHostToLoopback(hostName, { port, ca: certificate.cert });

  const firstPolicy = Object.keys(policies)[0];
  return {
    hostName,
    port,
    certificate,
    connectionString({ keyName = firstPolicy, key } = {}) {
      if (keyName === undefined) throw new Error('The stand-in has no shared access policy');
      const policyKey = key ?? policies[keyName];
      if (policyKey === undefined) throw new Error(`The stand-in has no policy '${keyName}'`);
      return `HostName=${hostName};SharedAccessKeyName=${keyName};SharedAccessKey=${policyKey}`;
    },
    setTwin(deviceId, seed) {
      const version = (twins.get(deviceId)?.version ?? 0) + 1;
      twins.set(deviceId, storedTwin(seed, version));
    },
    setModuleTwin,
    deleteDevice(deviceId) {
      twins.delete(deviceId);
      moduleTwins.delete(deviceId);
    },
    deleteModule(deviceId, moduleId) {
      moduleTwins.get(deviceId)?.delete(moduleId);
    },
    failNext(fault) {
      faults.push({ ...fault, remaining: fault.count ?? 1 });
    },
    requests,
    twinReads(deviceId, moduleId) {
      return requests.filter(
        (r) => r.rejection === undefined && r.authentication !== 'none' && r.deviceId !== undefined &&
          (deviceId === undefined || r.deviceId === deviceId) && (moduleId === undefined || r.moduleId === moduleId),
      ).length;
    },
    async close() {
      unmap();
      // The SDK's agent keeps connections alive; without this, close() would wait for them to time out.
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

interface StoredTwin extends Required<TwinSeed> {
  version: number;
  etag: string;
  updatedAt: string;
}

function storedTwin(seed: TwinSeed, version: number): StoredTwin {
  return {
    tags: seed.tags ?? {},
    desired: seed.desired ?? {},
    reported: seed.reported ?? {},
    version,
    etag: Buffer.from(`etag-${version}`).toString('base64'),
    updatedAt: new Date().toISOString(),
  };
}

/**
 * The shape IoT Hub returns for `GET /twins/{id}` and `GET /twins/{id}/modules/{mid}` (api-version 2021-04-12),
 * trimmed of nothing the SDK reads. A module twin names its module and has no device capabilities.
 */
function twinJson(deviceId: string, moduleId: string | undefined, twin: StoredTwin): unknown {
  const section = (values: Record<string, unknown>): Record<string, unknown> => ({
    ...values,
    $metadata: { $lastUpdated: twin.updatedAt },
    $version: twin.version,
  });
  return {
    deviceId,
    ...(moduleId === undefined ? {} : { moduleId }),
    etag: twin.etag,
    deviceEtag: 'ODk0MzQ2MzI=',
    status: 'enabled',
    statusUpdateTime: '0001-01-01T00:00:00Z',
    connectionState: 'Disconnected',
    lastActivityTime: '0001-01-01T00:00:00Z',
    cloudToDeviceMessageCount: 0,
    authenticationType: 'sas',
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    modelId: '',
    version: twin.version,
    tags: twin.tags,
    properties: { desired: section(twin.desired), reported: section(twin.reported) },
    ...(moduleId === undefined ? { capabilities: { iotEdge: false } } : {}),
  };
}

/** IoT Hub's error body; the SDK reads the code from `Message` ("ErrorCode:<code>;<text>"). */
function errorBody(code: string, text: string): unknown {
  return {
    Message: `ErrorCode:${code};${text}`,
    ExceptionMessage: `Tracking ID:${randomUUID().replaceAll('-', '')}-G:0-TimeStamp:${new Date().toISOString()}`,
  };
}

type AuthResult = { ok: true; authentication: Authentication } | { ok: false; authentication: Authentication; reason: string };

function authenticate(
  header: string | undefined,
  hostName: string,
  policies: Readonly<Record<string, string>>,
  bearerTokens: ReadonlySet<string>,
): AuthResult {
  if (header === undefined) return { ok: false, authentication: 'none', reason: 'no Authorization header' };
  if (header.startsWith('Bearer ')) {
    return bearerTokens.has(header.slice('Bearer '.length))
      ? { ok: true, authentication: 'bearer' }
      : { ok: false, authentication: 'bearer', reason: 'unknown bearer token' };
  }
  const prefix = 'SharedAccessSignature ';
  if (!header.startsWith(prefix)) return { ok: false, authentication: 'none', reason: 'unknown scheme' };
  const fail = (reason: string): AuthResult => ({ ok: false, authentication: 'sas', reason });

  const fields = new Map<string, string>();
  for (const pair of header.slice(prefix.length).split('&')) {
    const at = pair.indexOf('=');
    if (at > 0) fields.set(pair.slice(0, at), decodeURIComponent(pair.slice(at + 1)));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  const skn = fields.get('skn');
  if (sr === undefined || sig === undefined || se === undefined) return fail('sr, sig and se are required');
  if (skn === undefined) return fail('hub-level access needs skn');
  const key = policies[skn];
  if (key === undefined) return fail(`no policy named '${skn}'`);
  const expiry = Number(se);
  if (!Number.isInteger(expiry) || expiry * 1000 <= Date.now()) return fail('token expired');
  const resource = sr.toLowerCase();
  if (resource !== hostName && !resource.startsWith(`${hostName}/`)) return fail(`sr '${sr}' does not cover ${hostName}`);

  const expected = createHmac('sha256', Buffer.from(key, 'base64'))
    .update(`${encodeURIComponent(sr)}\n${se}`)
    .digest();
  const given = Buffer.from(sig, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return fail('signature mismatch');
  return { ok: true, authentication: 'sas' };
}

// ---------------------------------------------------------------------------------------------------------------
// Host-name mapping (test process only)
// ---------------------------------------------------------------------------------------------------------------

interface LoopbackTarget {
  port: number;
  ca: string;
}

const mappedHosts = new Map<string, LoopbackTarget>();
let restoreCreateConnection: (() => void) | undefined;

/**
 * Connections that any `https.Agent` opens to `hostName` go to `127.0.0.1:port` instead, still verifying TLS:
 * `servername` stays the hub's name and `ca` trusts only the stand-in's certificate. Other hosts are untouched.
 */
function mapHostToLoopback(hostName: string, target: LoopbackTarget): () => void {
  if (mappedHosts.has(hostName)) throw new Error(`${hostName} is already served by another stand-in`);
  mappedHosts.set(hostName, target);
  if (restoreCreateConnection === undefined) {
    const prototype = https.Agent.prototype;
    const original = prototype.createConnection;
    prototype.createConnection = function (this: https.Agent, options, callback) {
      const host = typeof options.host === 'string' ? options.host.toLowerCase() : undefined;
      const mapped = host === undefined ? undefined : mappedHosts.get(host);
      if (mapped === undefined) return original.call(this, options, callback);
      return original.call(
        this,
        { ...options, host: '127.0.0.1', port: mapped.port, servername: host, ca: mapped.ca },
        callback,
      );
    };
    restoreCreateConnection = () => {
      prototype.createConnection = original;
    };
  }
  return () => {
    mappedHosts.delete(hostName);
    if (mappedHosts.size === 0 && restoreCreateConnection !== undefined) {
      restoreCreateConnection();
      restoreCreateConnection = undefined;
    }
  };
}
