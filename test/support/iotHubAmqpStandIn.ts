/**
 * A loopback AMQPS peer for the part of IoT Hub the service SDK's `Client` uses to send cloud-to-device messages,
 * so the real azure-iothub `Client` runs unchanged against it with `HostName=127.0.0.1:PORT`:
 *
 * - TLS with a throw-away certificate for IP 127.0.0.1 (made with the openssl CLI at test time);
 * - CBS: a `put-token` on the `$cbs` node is answered `status-code` 200 only when the token is a valid shared access
 *   signature: the policy named by `skn` exists, `se` is in the future, `sr` is the hub's host name, and `sig` is the
 *   HMAC-SHA256, keyed by the policy's base64-decoded key, of `sr` as written in the token, a newline and `se` (as
 *   IoT Hub checks it); or, for identity-based access, `Bearer <token>` for the audience
 *   `https://iothubs.azure.net/.default` with a token the test accepts. Anything else is answered 401, which the
 *   SDK reports as `UnauthorizedError`;
 * - the `/messages/devicebound` link: each message addressed `to: /devices/{id}/messages/devicebound` is recorded and
 *   accepted when the device is registered; an unknown device is rejected with `amqp:not-found` (the SDK's
 *   `DeviceNotFoundError`), and a device whose queue holds {@link MAX_QUEUE_DEPTH} messages with
 *   `amqp:resource-limit-exceeded` (`DeviceMaximumQueueDepthExceededError`), as IoT Hub does. Sends on a connection
 *   that never put a valid token are rejected `amqp:unauthorized-access`.
 *
 * Trusting the certificate: the SDK builds its TLS options itself and has no setting for a CA, so while the stand-in
 * runs it is trusted for 127.0.0.1:PORT only, one level below the SDK ({@link trustForLoopbackPort}, undone by
 * `close()`); verification itself stays on, so a wrong certificate still fails.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo, Server, Socket } from 'node:net';
import rhea from 'rhea';
import type { Connection, EventContext, Message, Sender } from 'rhea';
import { createLoopbackCertificate, trustForLoopbackPort, type TestCertificate } from './loopbackTls.js';

export { createLoopbackCertificate, hasOpenssl } from './loopbackTls.js';

/** IoT Hub's limit of messages waiting in one device's cloud-to-device queue. */
export const MAX_QUEUE_DEPTH = 50;

/** One cloud-to-device message as the stand-in received it. */
export interface ReceivedC2dMessage {
  deviceId: string;
  /** As sent: a UUID string arrives as the AMQP uuid type and is shown here in its text form. */
  messageId: string | undefined;
  /** `iothub-ack`: none, positive, negative or full. */
  ack: string | undefined;
  /** Application properties other than `iothub-ack`. */
  properties: Record<string, unknown>;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  body: Buffer;
  /** What the stand-in answered. */
  outcome: 'accepted' | 'rejected';
  condition?: string;
}

export interface CbsRequest {
  audience: string;
  statusCode: number;
  /** Why the token was refused. */
  problem?: string;
}

export interface IotHubAmqpStandInOptions {
  /** Devices that exist; others are answered `amqp:not-found`. */
  devices?: readonly string[];
  /** Shared access policies by name, each with a base64 key. Default: `service` with a random key. */
  policies?: Record<string, string>;
  certificate?: TestCertificate;
  /** Bearer tokens to accept (identity-based access through `Client.fromTokenCredential`). */
  bearerTokens?: readonly string[];
}

export interface IotHubAmqpStandIn {
  /** `127.0.0.1:PORT`, the connection string's HostName and the token audience. */
  readonly hostName: string;
  readonly port: number;
  connectionString(options?: { keyName?: string; key?: string }): string;
  addDevice(deviceId: string): void;
  /** Rejects the next `count` deliveries with `condition` (e.g. `com.microsoft:timeout`, `amqp:internal-error`). */
  rejectNext(condition: string, count?: number): void;
  readonly received: readonly ReceivedC2dMessage[];
  /** Accepted messages only. */
  accepted(deviceId?: string): ReceivedC2dMessage[];
  readonly cbs: readonly CbsRequest[];
  openConnections(): number;
  close(): Promise<void>;
}

const C2D_ADDRESS = '/messages/devicebound';
const DEVICE_TARGET = /^\/devices\/([^/]+)\/messages\/devicebound$/;

export async function startIotHubAmqpStandIn(options: IotHubAmqpStandInOptions = {}): Promise<IotHubAmqpStandIn> {
  const certificate = options.certificate ?? createLoopbackCertificate();
  const policies = options.policies ?? { service: randomBytes(32).toString('base64') };
  const devices = new Set(options.devices ?? []);
  const bearerTokens = new Set(options.bearerTokens ?? []);
  const received: ReceivedC2dMessage[] = [];
  const cbs: CbsRequest[] = [];
  const rejections: Array<{ condition: string; remaining: number }> = [];
  const authorized = new WeakSet<Connection>();
  const connections = new Set<Connection>();
  const sockets = new Set<Socket>();
  let hostName = '';

  const container = rhea.create_container({ id: 'iothub-amqp-stand-in' });

  container.on('connection_open', (context: EventContext) => {
    connections.add(context.connection);
  });
  for (const event of ['connection_close', 'disconnected']) {
    container.on(event, (context: EventContext) => {
      connections.delete(context.connection);
    });
  }

  // The client's senders: `$cbs` for tokens, `/messages/devicebound` for C2D messages.
  container.on('receiver_open', (context: EventContext) => {
    const receiver = context.receiver;
    if (receiver === undefined) return;
    const address = receiver.target?.address;
    if (address !== '$cbs' && address !== C2D_ADDRESS) {
      receiver.close({ condition: 'amqp:not-found', description: `The stand-in serves no node '${String(address)}'.` });
      return;
    }
    receiver.set_target({ address });
  });

  // The client's receivers: the `$cbs` reply link.
  container.on('sender_open', (context: EventContext) => {
    const sender = context.sender;
    if (sender === undefined) return;
    const address = sender.source?.address;
    if (address !== '$cbs') {
      sender.close({ condition: 'amqp:not-found', description: `The stand-in serves no node '${String(address)}'.` });
      return;
    }
    sender.set_source({ address });
  });

  container.on('message', (context: EventContext) => {
    const { receiver, delivery, message } = context;
    if (receiver === undefined || delivery === undefined || message === undefined) return;
    const address = receiver.target?.address;
    if (address === '$cbs') {
      delivery.accept();
      answerPutToken(context.connection, message);
      return;
    }
    const record = toReceived(message);
    received.push(record);
    const reject = (condition: string, description: string): void => {
      record.outcome = 'rejected';
      record.condition = condition;
      delivery.reject({ condition, description });
    };
    if (!authorized.has(context.connection)) {
      reject('amqp:unauthorized-access', 'No valid token was put for this connection.');
      return;
    }
    const scripted = rejections[0];
    if (scripted !== undefined) {
      scripted.remaining -= 1;
      if (scripted.remaining <= 0) rejections.shift();
      reject(scripted.condition, 'Injected by the test.');
      return;
    }
    if (record.deviceId === '' || !devices.has(record.deviceId)) {
      reject('amqp:not-found', `Device '${record.deviceId}' is not registered.`);
      return;
    }
    const queued = received.filter((m) => m !== record && m.deviceId === record.deviceId && m.outcome === 'accepted').length;
    if (queued >= MAX_QUEUE_DEPTH) {
      reject('amqp:resource-limit-exceeded', `The queue of device '${record.deviceId}' is full.`);
      return;
    }
    delivery.accept();
  });

  function answerPutToken(connection: Connection, request: Message): void {
    const properties = (request.application_properties ?? {}) as Record<string, unknown>;
    const audience = typeof properties['name'] === 'string' ? properties['name'] : '';
    const problem =
      properties['operation'] !== 'put-token'
        ? `unsupported operation ${String(properties['operation'])}`
        : typeof request.body !== 'string'
          ? 'the token is not a string'
          : request.body.startsWith('Bearer ')
            ? verifyBearer(request.body.slice('Bearer '.length), audience, bearerTokens)
            : verifySas(request.body, audience, hostName, policies);
    const statusCode = problem === undefined ? 200 : 401;
    cbs.push(problem === undefined ? { audience, statusCode } : { audience, statusCode, problem });
    if (problem === undefined) authorized.add(connection);
    const reply: Message = {
      correlation_id: request.message_id,
      application_properties: {
        'status-code': statusCode,
        'status-description': problem === undefined ? 'OK' : `Unauthorized: ${problem}`,
      },
      body: undefined,
    };
    replyLink(connection, request.reply_to)?.send(reply);
  }

  container.on('error', () => undefined);

  const server: Server = container.listen({
    port: 0,
    host: '127.0.0.1',
    transport: 'tls',
    key: certificate.key,
    cert: certificate.cert,
  } as unknown as Parameters<typeof container.listen>[0]);
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  hostName = `127.0.0.1:${port}`;
  const untrust = trustForLoopbackPort(port, certificate.cert);
  const firstPolicy = Object.keys(policies)[0];

  return {
    hostName,
    port,
    connectionString({ keyName = firstPolicy, key } = {}) {
      if (keyName === undefined) throw new Error('The stand-in has no shared access policy');
      const policyKey = key ?? policies[keyName];
      if (policyKey === undefined) throw new Error(`The stand-in has no policy '${keyName}'`);
      return `HostName=${hostName};SharedAccessKeyName=${keyName};SharedAccessKey=${policyKey}`;
    },
    addDevice: (deviceId) => void devices.add(deviceId),
    rejectNext: (condition, count = 1) => void rejections.push({ condition, remaining: count }),
    received,
    accepted: (deviceId) => received.filter((m) => m.outcome === 'accepted' && (deviceId === undefined || m.deviceId === deviceId)),
    cbs,
    openConnections: () => connections.size,
    async close() {
      untrust();
      for (const connection of connections) connection.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Clients that were not closed keep the server open; give the close frames a moment, then cut them.
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, 250);
      await closed;
      clearTimeout(grace);
    },
  };
}

function replyLink(connection: Connection, replyTo: unknown): Sender | undefined {
  if (typeof replyTo !== 'string') return undefined;
  let found: Sender | undefined;
  connection.each_sender(
    (sender: Sender) => {
      found ??= sender;
    },
    (sender: Sender) => sender.is_open() && (sender.name === replyTo || sender.target?.address === replyTo || sender.source?.address === '$cbs'),
  );
  return found;
}

function toReceived(message: Message): ReceivedC2dMessage {
  const target = typeof message.to === 'string' ? DEVICE_TARGET.exec(message.to) : null;
  const { 'iothub-ack': ack, ...properties } = (message.application_properties ?? {}) as Record<string, unknown>;
  return {
    deviceId: target?.[1] === undefined ? '' : decodeURIComponent(target[1]),
    messageId: idText(message.message_id),
    ack: typeof ack === 'string' ? ack : undefined,
    properties,
    contentType: typeof message.content_type === 'string' ? message.content_type : undefined,
    contentEncoding: typeof message.content_encoding === 'string' ? message.content_encoding : undefined,
    body: bodyBytes(message.body),
    outcome: 'accepted',
  };
}

function idText(id: unknown): string | undefined {
  if (typeof id === 'string') return id;
  if (Buffer.isBuffer(id) && id.length === 16) {
    const hex = id.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  return id === undefined || id === null ? undefined : String(id);
}

function bodyBytes(body: unknown): Buffer {
  // The SDK sends its Message body as an AMQP data section, which rhea hands over as { typecode: 0x75, content }.
  const section = body as { typecode?: number; content?: unknown } | undefined;
  if (section !== undefined && section !== null && section.typecode === 0x75 && Buffer.isBuffer(section.content)) {
    return section.content;
  }
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body ?? null), 'utf8');
}

/** IoT Hub's data-plane audience for Microsoft Entra tokens. */
const ENTRA_AUDIENCE = 'https://iothubs.azure.net/.default';

function verifyBearer(token: string, audience: string, accepted: ReadonlySet<string>): string | undefined {
  if (audience !== ENTRA_AUDIENCE) return `bearer token for audience '${audience}', expected ${ENTRA_AUDIENCE}`;
  return accepted.has(token) ? undefined : 'unknown bearer token';
}

/** The IoT Hub shared access signature check; undefined when the token is valid for `hostName`. */
function verifySas(
  token: string,
  audience: string,
  hostName: string,
  policies: Readonly<Record<string, string>>,
): string | undefined {
  const prefix = 'SharedAccessSignature ';
  if (!token.startsWith(prefix)) return 'not a SharedAccessSignature';
  // Fields as they appear in the token: the signature covers `sr` exactly as written there (URL-encoded by
  // convention; the service SDK writes a bare host name, which is the same text for a real hub's name).
  const raw = new Map<string, string>();
  for (const pair of token.slice(prefix.length).split('&')) {
    const at = pair.indexOf('=');
    if (at > 0) raw.set(pair.slice(0, at), pair.slice(at + 1));
  }
  const fields = new Map([...raw].map(([k, v]) => [k, decodeURIComponent(v)] as const));
  const signedSr = raw.get('sr');
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  const skn = fields.get('skn');
  if (signedSr === undefined || sr === undefined || sig === undefined || se === undefined || skn === undefined) {
    return 'sr, sig, se and skn are required';
  }
  if (sr.toLowerCase() !== hostName.toLowerCase()) return `sr '${sr}' is not this hub`;
  if (audience.toLowerCase() !== hostName.toLowerCase()) return `audience '${audience}' is not this hub`;
  if (!/^\d+$/.test(se) || Number(se) * 1000 < Date.now()) return 'the token has expired';
  const key = policies[skn];
  if (key === undefined) return `no policy named '${skn}'`;
  const expected = createHmac('sha256', Buffer.from(key, 'base64')).update(`${signedSr}\n${se}`).digest();
  const given = Buffer.from(sig, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'signature mismatch';
  return undefined;
}
