/**
 * A loopback AMQP 1.0 peer that answers the subset of Azure Service Bus the real `@azure/service-bus` client uses for
 * queues: CBS put-token, sends (single and batched), peek-lock and receive-and-delete receives, settlement over the
 * receiver link or the `$management` link, peek, lock renewal, and the dead-letter sub-queue. Scope and the places it
 * departs from the service are in docs/adr/0004-service-bus-stand-in.md.
 *
 * `UseDevelopmentEmulator=true` in the connection string makes the SDK speak plain TCP to the port in the endpoint, so
 * the stand-in needs no certificate. Identity-based access (a `TokenCredential`) needs TLS: the SDK then connects
 * with TLS to the port in the namespace (`127.0.0.1:PORT`) and puts a Microsoft Entra token (CBS token type `jwt`).
 * Given a certificate, the stand-in serves TLS instead, trusted for its port only while it runs (loopbackTls.ts), and
 * accepts a `jwt` token only when the test named it and its audience is an entity of this namespace.
 * Shared access signatures are accepted without verification in both modes. Links to entities and `$management`
 * nodes are refused (`amqp:unauthorized-access`) on a connection that has not put an accepted token.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { ServiceBusClient } from '@azure/service-bus';
import rhea from 'rhea';
import type { AmqpError, Connection, Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import { trustForLoopbackPort, type TestCertificate } from './loopbackTls.js';

export interface ServiceBusStandInOptions {
  /** Deliveries after which an abandoned message moves to the dead-letter queue (the service's default is 10). */
  maxDeliveryCount?: number;
  /** How long a peek-lock delivery stays locked before it counts as abandoned (the service's default is 60 s). */
  lockDurationMs?: number;
  /** Queues that exist. When omitted, any queue name is created on first use. */
  queues?: readonly string[];
  /** Serve TLS with this certificate (made with `createLoopbackCertificate`) instead of plain TCP. */
  certificate?: TestCertificate;
  /** Microsoft Entra tokens (CBS token type `jwt`) to accept; every other `jwt` token is refused with 401. */
  jwtTokens?: readonly string[];
}

/** What a test can see of one stored message, without going through the SDK. */
export interface StandInMessage {
  sequenceNumber: number;
  messageId: unknown;
  /** The body as sent: a `Buffer` for a data section, the value for an AMQP value section. */
  body: unknown;
  applicationProperties: Record<string, unknown>;
  /** Times the message has been handed out in peek-lock mode. */
  deliveryCount: number;
  enqueuedTime: Date;
  locked: boolean;
  /** The lock token the SDK reports as `lockToken` while the message is locked. */
  lockToken: string | undefined;
  deadLetterReason: string | undefined;
  deadLetterErrorDescription: string | undefined;
}

export interface StandInQueues {
  names(): string[];
  active(queue: string): StandInMessage[];
  deadLetters(queue: string): StandInMessage[];
  /** While set, sends to the queue are rejected with `com.microsoft:server-busy`, as during a service incident. */
  rejectSends(queue: string, reject: boolean): void;
}

/** One `put-token` on `$cbs`: for which audience, with which kind of token, and what the stand-in answered. */
export interface CbsPutToken {
  audience: string;
  /** `jwt` (Microsoft Entra) or `servicebus.windows.net:sastoken`. */
  tokenType: string;
  statusCode: number;
  /** Why the token was refused. */
  problem?: string;
}

/** One request the stand-in answered on `$cbs` or a `$management` node, for assertions about what the SDK asked. */
export interface StandInRequest {
  node: string;
  operation: string;
  statusCode: number;
}

export interface ServiceBusStandIn {
  /**
   * A SAS connection string: `UseDevelopmentEmulator=true` (plain TCP), or, with a certificate, one the SDK
   * reaches with TLS.
   */
  connectionString: string;
  /** `127.0.0.1:PORT`: with a certificate, the namespace to reach with a `TokenCredential`. */
  fullyQualifiedNamespace: string;
  port: number;
  queues: StandInQueues;
  requests: readonly StandInRequest[];
  cbs: readonly CbsPutToken[];
  /** AMQP connections currently open: 0 once every client is closed. */
  openConnections(): number;
  stop(): Promise<void>;
}

const DEAD_LETTER_SUFFIX = '/$DeadLetterQueue';
const MANAGEMENT_SUFFIX = '/$management';
/** The SDK sends a `ServiceBusMessageBatch` as one transfer of this format whose body is one data section per message. */
const BATCH_FORMAT = 0x80013700;
const MAX_MESSAGE_SIZE = 256 * 1024;
/** size 8, data offset 2, AMQP frame type 0, channel 0, no body: the AMQP heartbeat. */
const EMPTY_FRAME = Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]);

const LOCK_LOST: AmqpError = {
  condition: 'com.microsoft:message-lock-lost',
  description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
};

interface Lock {
  token: string;
  lockedUntil: Date;
  timer: NodeJS.Timeout;
}

interface StoredMessage {
  sequenceNumber: number;
  enqueuedTime: Date;
  /** The message as the client sent it; broker annotations are added per delivery and never stored. */
  message: Message;
  deliveryCount: number;
  lock: Lock | undefined;
  deadLetterSource: string | undefined;
}

interface Queue {
  name: string;
  active: StoredMessage[];
  deadLetters: StoredMessage[];
}

type SubQueue = 'active' | 'deadLetters';

interface EntityRef {
  queue: Queue;
  sub: SubQueue;
}

interface Consumer {
  link: Sender;
  entity: EntityRef;
  receiveAndDelete: boolean;
}

type Settlement =
  | { kind: 'complete' }
  | { kind: 'abandon'; propertiesToModify: Record<string, unknown> | undefined }
  | { kind: 'deadLetter'; reason: unknown; description: unknown; propertiesToModify: Record<string, unknown> | undefined }
  | { kind: 'defer' };

/** rhea fields its typings leave out: the sender's credit and the attach frame we answer with. */
interface LinkInternals {
  credit: number;
  local: { attach: Record<string, unknown> };
}

function internals(link: Sender | Receiver): LinkInternals {
  return link as unknown as LinkInternals;
}

/** rhea's outcome constructors exist at runtime but are missing from its typings. */
const outcomes = rhea.message as unknown as {
  accepted(): { described(): unknown };
  rejected(fields: { error: AmqpError }): { described(): unknown };
};

/**
 * The SDK turns a delivery tag into a lock token the way .NET turns a Guid into bytes (first three groups
 * byte-swapped), and sends `string_to_uuid(lockToken)` back in management requests. Building the tag with the same
 * swap makes the token the SDK shows equal to the one stored here.
 */
function dotnetGuidOrder(bytes: Buffer): Buffer {
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Buffer.from(order.map((i) => bytes.readUInt8(i)));
}

function tagToToken(tag: Buffer | string): string | undefined {
  const bytes = typeof tag === 'string' ? Buffer.from(tag) : tag;
  return bytes.length === 16 ? rhea.uuid_to_string(dotnetGuidOrder(bytes)) : undefined;
}

function uuidToToken(value: unknown): string | undefined {
  return Buffer.isBuffer(value) && value.length === 16 ? rhea.uuid_to_string(value) : undefined;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** Unpacks a batch transfer into its messages; a single-message batch carries one data section. */
function decodeBatch(payload: Buffer): Message[] {
  const envelope = rhea.message.decode(payload);
  const section = envelope.body as { content?: unknown } | undefined;
  const parts: unknown[] = Array.isArray(section?.content) ? section.content : [section?.content];
  return parts.filter((part): part is Buffer => Buffer.isBuffer(part)).map((part) => rhea.message.decode(part) as unknown as Message);
}

function bodyOf(message: Message): unknown {
  const body = message.body as { typecode?: unknown; content?: unknown } | null | undefined;
  return typeof body?.typecode === 'number' ? body.content : body;
}

export async function startServiceBusStandIn(options: ServiceBusStandInOptions = {}): Promise<ServiceBusStandIn> {
  const maxDeliveryCount = options.maxDeliveryCount ?? 10;
  const lockDurationMs = options.lockDurationMs ?? 60_000;
  const declared = options.queues === undefined ? undefined : new Set(options.queues);
  const queues = new Map<string, Queue>();
  const consumers = new Set<Consumer>();
  const peekLockLinks = new WeakSet<Sender>();
  const requests: StandInRequest[] = [];
  const cbs: CbsPutToken[] = [];
  const jwtTokens = new Set(options.jwtTokens ?? []);
  /** Connections that have put an accepted token: only they may attach links to entities. */
  const authorized = new WeakSet<Connection>();
  let namespace = '';
  const connections = new Set<Connection>();
  const sockets = new Set<Socket>();
  const rejectingSends = new Set<string>();
  const promptlyAcknowledged = new WeakSet<Socket>();
  let nextSequenceNumber = 1;
  let pumpScheduled = false;
  let stopped = false;

  function queueNamed(name: string): Queue | undefined {
    const existing = queues.get(name);
    if (existing !== undefined) return existing;
    if (declared !== undefined && !declared.has(name)) return undefined;
    const queue: Queue = { name, active: [], deadLetters: [] };
    queues.set(name, queue);
    return queue;
  }

  /** `q`, `q/$DeadLetterQueue`; anything else (topics, subscriptions, `$Transfer`) is outside the stand-in. */
  function resolveEntity(address: string | undefined): EntityRef | undefined {
    if (address === undefined || address === '' || address.startsWith('$')) return undefined;
    const deadLetter = address.endsWith(DEAD_LETTER_SUFFIX);
    const name = deadLetter ? address.slice(0, -DEAD_LETTER_SUFFIX.length) : address;
    if (name.includes('/')) return undefined;
    const queue = queueNamed(name);
    return queue === undefined ? undefined : { queue, sub: deadLetter ? 'deadLetters' : 'active' };
  }

  function notFound(address: string | undefined): AmqpError {
    return {
      condition: 'amqp:not-found',
      description: `The messaging entity '${address ?? ''}' could not be found (the stand-in serves queues and their dead-letter queues only).`,
    };
  }

  function enqueue(queue: Queue, message: Message): void {
    queue.active.push({
      sequenceNumber: nextSequenceNumber++,
      enqueuedTime: new Date(),
      message,
      deliveryCount: 0,
      lock: undefined,
      deadLetterSource: undefined,
    });
    schedulePump();
  }

  function releaseLock(entry: StoredMessage): void {
    if (entry.lock !== undefined) clearTimeout(entry.lock.timer);
    entry.lock = undefined;
  }

  function applyProperties(entry: StoredMessage, properties: Record<string, unknown> | undefined): void {
    if (properties === undefined || Object.keys(properties).length === 0) return;
    entry.message = { ...entry.message, application_properties: { ...asRecord(entry.message.application_properties), ...properties } } as Message;
  }

  function moveToDeadLetters(entity: EntityRef, entry: StoredMessage, reason: unknown, description: unknown): void {
    const deadLetterProperties: Record<string, unknown> = {};
    if (reason !== undefined && reason !== null) deadLetterProperties.DeadLetterReason = String(reason);
    if (description !== undefined && description !== null) deadLetterProperties.DeadLetterErrorDescription = String(description);
    applyProperties(entry, deadLetterProperties);
    if (entity.sub === 'deadLetters') return;
    entity.queue.active.splice(entity.queue.active.indexOf(entry), 1);
    entry.deadLetterSource = entity.queue.name;
    entity.queue.deadLetters.push(entry);
    entity.queue.deadLetters.sort((a, b) => a.sequenceNumber - b.sequenceNumber);
  }

  /** The service counts a delivery when the lock is taken, so an abandon on the last allowed delivery dead-letters. */
  function afterUnlock(entity: EntityRef, entry: StoredMessage): void {
    if (entity.sub === 'active' && entry.deliveryCount >= maxDeliveryCount) {
      moveToDeadLetters(entity, entry, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${maxDeliveryCount} delivery attempts.`);
    }
    schedulePump();
  }

  function findLocked(token: string): { entity: EntityRef; entry: StoredMessage } | undefined {
    for (const queue of queues.values()) {
      for (const sub of ['active', 'deadLetters'] as const) {
        const entry = queue[sub].find((candidate) => candidate.lock?.token === token);
        if (entry !== undefined) return { entity: { queue, sub }, entry };
      }
    }
    return undefined;
  }

  /** Applies one settlement; returns the error to report, if any. */
  function settle(token: string | undefined, settlement: Settlement): AmqpError | undefined {
    const found = token === undefined ? undefined : findLocked(token);
    if (found === undefined) return LOCK_LOST;
    const { entity, entry } = found;
    releaseLock(entry);
    switch (settlement.kind) {
      case 'complete': {
        const list = entity.queue[entity.sub];
        list.splice(list.indexOf(entry), 1);
        return undefined;
      }
      case 'abandon':
        applyProperties(entry, settlement.propertiesToModify);
        afterUnlock(entity, entry);
        return undefined;
      case 'deadLetter':
        applyProperties(entry, settlement.propertiesToModify);
        moveToDeadLetters(entity, entry, settlement.reason, settlement.description);
        schedulePump();
        return undefined;
      case 'defer':
        afterUnlock(entity, entry);
        return { condition: 'amqp:not-implemented', description: 'The stand-in does not implement deferral; the message was unlocked.' };
    }
  }

  /** The message as it goes on the wire: what the client sent plus the broker's annotations for this delivery. */
  function envelope(entry: StoredMessage, lock: Lock | undefined): Message {
    const annotations: Record<string, unknown> = {
      ...asRecord(entry.message.message_annotations),
      'x-opt-sequence-number': rhea.types.wrap_long(entry.sequenceNumber),
      'x-opt-enqueued-time': entry.enqueuedTime,
    };
    if (lock !== undefined) {
      annotations['x-opt-locked-until'] = lock.lockedUntil;
      annotations['x-opt-lock-token'] = rhea.types.wrap_uuid(rhea.string_to_uuid(lock.token));
    }
    if (entry.deadLetterSource !== undefined) annotations['x-opt-deadletter-source'] = entry.deadLetterSource;
    return { ...entry.message, delivery_count: entry.deliveryCount, message_annotations: annotations } as Message;
  }

  function lockFor(entity: EntityRef, entry: StoredMessage, token: string = randomUUID()): Lock {
    const timer = setTimeout(() => {
      if (entry.lock?.token !== token) return;
      entry.lock = undefined;
      afterUnlock(entity, entry);
    }, lockDurationMs);
    timer.unref();
    return { token, lockedUntil: new Date(Date.now() + lockDurationMs), timer };
  }

  function deliver(consumer: Consumer, entry: StoredMessage): void {
    const { entity, link } = consumer;
    if (consumer.receiveAndDelete) {
      const list = entity.queue[entity.sub];
      list.splice(list.indexOf(entry), 1);
      link.send(envelope(entry, undefined), Buffer.from(randomUUID().replace(/-/g, ''), 'hex'));
      return;
    }
    const lock = lockFor(entity, entry);
    const message = envelope(entry, lock);
    entry.lock = lock;
    entry.deliveryCount += 1;
    link.send(message, dotnetGuidOrder(Buffer.from(rhea.string_to_uuid(lock.token))));
  }

  /**
   * Sends available messages within each receiver's credit. It runs from `setImmediate` so that rhea has already
   * written earlier sends and `credit` counts only what is still open; sends inside one run are counted here.
   */
  function pump(): void {
    for (const consumer of consumers) {
      if (!consumer.link.is_open()) {
        consumers.delete(consumer);
        continue;
      }
      let budget = internals(consumer.link).credit;
      const list = consumer.entity.queue[consumer.entity.sub];
      for (const entry of [...list]) {
        if (budget <= 0) break;
        if (entry.lock !== undefined) continue;
        deliver(consumer, entry);
        budget -= 1;
      }
    }
  }

  function schedulePump(): void {
    if (pumpScheduled || stopped) return;
    pumpScheduled = true;
    setImmediate(() => {
      pumpScheduled = false;
      if (!stopped) pump();
    });
  }

  function view(entry: StoredMessage): StandInMessage {
    const properties = asRecord(entry.message.application_properties) ?? {};
    const reason = properties.DeadLetterReason;
    const description = properties.DeadLetterErrorDescription;
    return {
      sequenceNumber: entry.sequenceNumber,
      messageId: entry.message.message_id,
      body: bodyOf(entry.message),
      applicationProperties: { ...properties },
      deliveryCount: entry.deliveryCount,
      enqueuedTime: entry.enqueuedTime,
      locked: entry.lock !== undefined,
      lockToken: entry.lock?.token,
      deadLetterReason: typeof reason === 'string' ? reason : undefined,
      deadLetterErrorDescription: typeof description === 'string' ? description : undefined,
    };
  }

  // ---- request/response nodes ($cbs and <entity>/$management) ----

  interface Reply {
    statusCode: number;
    description: string;
    condition?: string;
    body?: unknown;
  }

  function replyLink(connection: Connection, replyTo: unknown): Sender | undefined {
    if (typeof replyTo !== 'string') return undefined;
    let found: Sender | undefined;
    connection.each_sender(
      (sender: Sender) => {
        found ??= sender;
      },
      (sender: Sender) => sender.is_open() && (sender.name === replyTo || sender.target?.address === replyTo),
    );
    return found;
  }

  function answer(context: EventContext, node: string, request: Message, reply: Reply): void {
    const operation = String(asRecord(request.application_properties)?.operation ?? '');
    requests.push({ node, operation, statusCode: reply.statusCode });
    const properties: Record<string, unknown> = {
      // core-amqp reads `status-code`, the Service Bus management client reads `statusCode`: the service sends both.
      'status-code': reply.statusCode,
      statusCode: reply.statusCode,
      'status-description': reply.description,
      statusDescription: reply.description,
    };
    if (reply.condition !== undefined) {
      properties['error-condition'] = reply.condition;
      properties.errorCondition = reply.condition;
    }
    const response: Message = { correlation_id: request.message_id, application_properties: properties, body: reply.body };
    replyLink(context.connection, request.reply_to)?.send(response);
  }

  function putToken(connection: Connection, request: Message): Reply {
    const properties = asRecord(request.application_properties) ?? {};
    if (properties.operation !== 'put-token') {
      return { statusCode: 400, description: `Unsupported CBS operation '${String(properties.operation)}'.`, condition: 'amqp:not-implemented' };
    }
    const audience = typeof properties.name === 'string' ? properties.name : '';
    const tokenType = typeof properties.type === 'string' ? properties.type : '';
    const problem =
      typeof request.body !== 'string' || request.body === '' || audience === ''
        ? 'put-token needs a token body and an audience name'
        : tokenType === 'jwt'
          ? jwtProblem(request.body, audience)
          : undefined;
    const statusCode = problem === undefined ? 202 : 401;
    cbs.push({ audience, tokenType, statusCode, ...(problem === undefined ? {} : { problem }) });
    if (problem !== undefined) return { statusCode, description: `Unauthorized: ${problem}.`, condition: 'amqp:unauthorized-access' };
    authorized.add(connection);
    return { statusCode, description: 'Accepted' };
  }

  /** Why a Microsoft Entra token is refused: not one the test accepts, or for another namespace than this one. */
  function jwtProblem(token: string, audience: string): string | undefined {
    if (!audience.toLowerCase().startsWith(`sb://${namespace}/`)) return `audience '${audience}' is not an entity of sb://${namespace}/`;
    return jwtTokens.has(token) ? undefined : 'unknown jwt token';
  }

  /** Refuses a link to anything but `$cbs` on a connection without an accepted token, as the service does. */
  function refusedUnauthorized(link: Sender | Receiver, connection: Connection): boolean {
    if (authorized.has(connection)) return false;
    link.close({ condition: 'amqp:unauthorized-access', description: 'No accepted token was put on this connection.' });
    return true;
  }

  function lockTokensOf(body: Record<string, unknown>): Array<string | undefined> {
    const tokens = body['lock-tokens'];
    return Array.isArray(tokens) ? tokens.map(uuidToToken) : [];
  }

  function management(entity: EntityRef, request: Message): Reply {
    const operation = String(asRecord(request.application_properties)?.operation ?? '');
    const body = asRecord(request.body) ?? {};
    switch (operation) {
      case 'com.microsoft:peek-message': {
        const from = Number(body['from-sequence-number'] ?? 0);
        const count = Number(body['message-count'] ?? 1);
        const peeked = entity.queue[entity.sub]
          .filter((entry) => entry.sequenceNumber >= from)
          .slice(0, Math.max(count, 0))
          .map((entry) => ({ message: rhea.message.encode(envelope(entry, undefined)) }));
        return peeked.length === 0
          ? { statusCode: 204, description: 'No messages to peek.' }
          : { statusCode: 200, description: 'OK', body: { messages: peeked } };
      }
      case 'com.microsoft:renew-lock': {
        const expirations: Date[] = [];
        for (const token of lockTokensOf(body)) {
          const found = token === undefined ? undefined : findLocked(token);
          if (found?.entry.lock === undefined) return { statusCode: 410, description: LOCK_LOST.description ?? '', condition: LOCK_LOST.condition };
          const { entity: owner, entry } = found;
          const renewed = lockFor(owner, entry, found.entry.lock.token);
          releaseLock(entry);
          entry.lock = renewed;
          expirations.push(renewed.lockedUntil);
        }
        return { statusCode: 200, description: 'OK', body: { expirations } };
      }
      case 'com.microsoft:update-disposition': {
        const status = body['disposition-status'];
        const propertiesToModify = asRecord(body['properties-to-modify']);
        const settlement: Settlement | undefined =
          status === 'completed'
            ? { kind: 'complete' }
            : status === 'abandoned'
              ? { kind: 'abandon', propertiesToModify }
              : status === 'suspended'
                ? { kind: 'deadLetter', reason: body['deadletter-reason'], description: body['deadletter-description'], propertiesToModify }
                : status === 'defered'
                  ? { kind: 'defer' }
                  : undefined;
        if (settlement === undefined) return { statusCode: 400, description: `Unknown disposition-status '${String(status)}'.`, condition: 'amqp:invalid-field' };
        for (const token of lockTokensOf(body)) {
          const error = settle(token, settlement);
          if (error !== undefined) return { statusCode: error === LOCK_LOST ? 410 : 501, description: error.description ?? '', condition: String(error.condition) };
        }
        return { statusCode: 200, description: 'OK' };
      }
      default:
        return {
          statusCode: 501,
          description: `The stand-in does not implement management operation '${operation}'.`,
          condition: 'amqp:not-implemented',
        };
    }
  }

  // ---- the AMQP container ----

  // autoaccept off: a send is accepted only once it is stored. Modified is told apart from released because a
  // modified outcome with undeliverable-here is the SDK's defer, not an abandon.
  const container = rhea.create_container({ id: 'servicebus-stand-in', autoaccept: false, treat_modified_as_released: false });

  container.on('connection_open', (context: EventContext) => {
    connections.add(context.connection);
    const socket = (context.connection as unknown as { socket?: Socket }).socket;
    if (socket !== undefined) promptlyAcknowledged.add(socket);
  });
  // A clean close raises connection_close only; a dropped socket raises disconnected only.
  for (const event of ['connection_close', 'disconnected']) {
    container.on(event, (context: EventContext) => {
      connections.delete(context.connection);
    });
  }

  // The client opened a sender: we receive on `$cbs`, a `$management` node or a queue.
  container.on('receiver_open', (context: EventContext) => {
    const receiver = context.receiver;
    if (receiver === undefined) return;
    const address = receiver.target?.address;
    const attach = internals(receiver).local.attach;
    if (address !== '$cbs' && refusedUnauthorized(receiver, context.connection)) return;
    const isNode = address === '$cbs' || (address?.endsWith(MANAGEMENT_SUFFIX) ?? false);
    const entity = isNode ? undefined : resolveEntity(address);
    if (!isNode && (entity === undefined || entity.sub === 'deadLetters')) {
      // Service Bus answers an attach to a missing entity with a null terminus and a detach carrying the error.
      receiver.close(
        entity === undefined ? notFound(address) : { condition: 'amqp:not-allowed', description: 'Messages cannot be sent to a dead-letter queue.' },
      );
      return;
    }
    receiver.set_target({ address });
    receiver.set_source(receiver.source ?? {});
    attach.max_message_size = MAX_MESSAGE_SIZE;
  });

  // The client opened a receiver: a reply link for `$cbs` / `$management`, or a consumer of a queue or its DLQ.
  container.on('sender_open', (context: EventContext) => {
    const sender = context.sender;
    if (sender === undefined) return;
    const address = sender.source?.address;
    const attach = internals(sender).local.attach;
    attach.snd_settle_mode = sender.snd_settle_mode;
    attach.rcv_settle_mode = sender.rcv_settle_mode;
    attach.max_message_size = MAX_MESSAGE_SIZE;
    if (address !== '$cbs' && refusedUnauthorized(sender, context.connection)) return;
    if (address === '$cbs' || (address?.endsWith(MANAGEMENT_SUFFIX) ?? false)) {
      sender.set_source({ address });
      sender.set_target(sender.target ?? {});
      return;
    }
    const entity = resolveEntity(address);
    if (entity === undefined) {
      sender.close(notFound(address));
      return;
    }
    sender.set_source({ address });
    sender.set_target(sender.target ?? {});
    // snd-settle-mode `settled` is how the SDK asks for receive-and-delete.
    const receiveAndDelete = sender.snd_settle_mode === 1;
    consumers.add({ link: sender, entity, receiveAndDelete });
    if (!receiveAndDelete) peekLockLinks.add(sender);
    schedulePump();
  });

  container.on('sendable', () => schedulePump());

  // A drain ends the SDK's receive call. We stop here rather than send more, so the drain flow always carries the
  // unused credit back; messages that arrive meanwhile wait for the next receive.
  container.on('sender_draining', (context: EventContext) => {
    context.sender?.set_drained(true);
  });

  container.on('message', (context: EventContext) => {
    const { receiver, delivery } = context;
    if (receiver === undefined || delivery === undefined) return;
    const address = receiver.target?.address;
    const message = context.message;
    if (address === '$cbs' && message !== undefined) {
      delivery.accept();
      answer(context, '$cbs', message, putToken(context.connection, message));
      return;
    }
    if (address?.endsWith(MANAGEMENT_SUFFIX) === true && message !== undefined) {
      delivery.accept();
      const entity = resolveEntity(address.slice(0, -MANAGEMENT_SUFFIX.length));
      const reply: Reply =
        entity === undefined
          ? { statusCode: 404, description: notFound(address.slice(0, -MANAGEMENT_SUFFIX.length)).description ?? '', condition: 'amqp:not-found' }
          : management(entity, message);
      answer(context, address, message, reply);
      return;
    }
    const entity = resolveEntity(address);
    if (entity === undefined) {
      delivery.reject(notFound(address));
      return;
    }
    if (rejectingSends.has(entity.queue.name)) {
      delivery.reject({ condition: 'com.microsoft:server-busy', description: `The stand-in is rejecting sends to '${entity.queue.name}'.` });
      return;
    }
    const format = (context as EventContext & { format?: number }).format ?? 0;
    if (format === BATCH_FORMAT && Buffer.isBuffer(message)) {
      for (const part of decodeBatch(message)) enqueue(entity.queue, part);
    } else if (format === 0 && message !== undefined) {
      enqueue(entity.queue, message);
    } else {
      delivery.reject({ condition: 'amqp:not-implemented', description: `Message format ${format} is not supported.` });
      return;
    }
    delivery.accept();
  });

  // ---- settlement over the receiver link ----

  function settleDelivery(delivery: Delivery | undefined, settlement: Settlement): void {
    // Replies on $cbs / $management links are accepted by the client too; only queue deliveries carry a lock.
    if (delivery === undefined || !peekLockLinks.has(delivery.link as Sender)) return;
    const error = settle(tagToToken(delivery.tag), settlement);
    // The SDK receives in second settle mode: its promise resolves only when we settle with the outcome.
    delivery.update(true, error === undefined ? outcomes.accepted().described() : outcomes.rejected({ error }).described());
  }

  container.on('accepted', (context: EventContext) => settleDelivery(context.delivery, { kind: 'complete' }));
  container.on('released', (context: EventContext) => settleDelivery(context.delivery, { kind: 'abandon', propertiesToModify: undefined }));
  container.on('modified', (context: EventContext) => {
    const state = context.delivery?.remote_state as { undeliverable_here?: boolean; message_annotations?: unknown } | undefined;
    settleDelivery(
      context.delivery,
      state?.undeliverable_here === true ? { kind: 'defer' } : { kind: 'abandon', propertiesToModify: asRecord(state?.message_annotations) },
    );
  });
  container.on('rejected', (context: EventContext) => {
    const state = context.delivery?.remote_state as { error?: { condition?: unknown; info?: unknown } } | undefined;
    const info = asRecord(state?.error?.info) ?? {};
    const { DeadLetterReason: reason, DeadLetterErrorDescription: description, ...rest } = info;
    settleDelivery(context.delivery, { kind: 'deadLetter', reason, description, propertiesToModify: rest });
  });

  // rhea reports protocol problems on the container; a stand-in must not crash the test process over one client.
  container.on('error', () => undefined);

  const { certificate } = options;
  const server: Server = container.listen(
    certificate === undefined
      ? { port: 0, host: '127.0.0.1' }
      : ({ port: 0, host: '127.0.0.1', transport: 'tls', key: certificate.key, cert: certificate.cert } as unknown as Parameters<typeof container.listen>[0]),
  );
  // Over TLS the socket rhea talks on (and the one an empty frame must be written to, encrypted) is the TLS socket.
  server.on(certificate === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    // Nagle plus delayed ACKs hold small frames for ~40 ms on loopback, which the service's latency is not. Our side
    // can turn Nagle off; the SDK's cannot be reached, so once AMQP is open every inbound chunk is answered with an
    // empty frame (a heartbeat, legal at any time after open) that carries the ACK at once. The nextTick puts it
    // after rhea's own reply to the chunk, so it never precedes our open frame.
    socket.setNoDelay(true);
    socket.on('data', () => {
      if (!promptlyAcknowledged.has(socket)) return;
      process.nextTick(() => {
        if (socket.writable) socket.write(EMPTY_FRAME);
      });
    });
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  namespace = `127.0.0.1:${port}`;
  const untrust = certificate === undefined ? () => undefined : trustForLoopbackPort(port, certificate.cert);

  return {
    connectionString:
      `Endpoint=sb://${namespace};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE` +
      (certificate === undefined ? ';UseDevelopmentEmulator=true' : ''),
    fullyQualifiedNamespace: namespace,
    port,
    requests,
    cbs,
    queues: {
      names: () => [...queues.keys()],
      active: (name) => (queues.get(name)?.active ?? []).map(view),
      deadLetters: (name) => (queues.get(name)?.deadLetters ?? []).map(view),
      rejectSends: (name, reject) => {
        if (reject) rejectingSends.add(name);
        else rejectingSends.delete(name);
      },
    },
    openConnections: () => connections.size,
    async stop() {
      stopped = true;
      untrust();
      for (const queue of queues.values()) for (const entry of [...queue.active, ...queue.deadLetters]) releaseLock(entry);
      for (const connection of connections) connection.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Clients that were not closed would keep the server open; give the close frames a moment, then cut them.
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, 250);
      await closed;
      clearTimeout(grace);
    },
  };
}

/**
 * Plays the outage: receives every message on `queue` in peek-lock and abandons it, as a consumer whose e-mail
 * service is down would, until the stand-in dead-letters them for exceeding the delivery count. Asks for exactly as
 * many messages as are waiting so each receive returns at once. Returns how many abandons it took.
 */
export async function abandonUntilDeadLettered(standIn: ServiceBusStandIn, client: ServiceBusClient, queue: string): Promise<number> {
  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  let abandons = 0;
  try {
    for (;;) {
      const waiting = standIn.queues.active(queue).filter((message) => !message.locked).length;
      if (waiting === 0) return abandons;
      const messages = await receiver.receiveMessages(waiting, { maxWaitTimeInMs: 2_000 });
      for (const message of messages) {
        await receiver.abandonMessage(message);
        abandons += 1;
      }
    }
  } finally {
    await receiver.close();
  }
}
