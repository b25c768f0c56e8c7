/**
 * Adapter: the {@link DeviceNotifier} port over azure-iothub's service `Client` (cloud-to-device messages over
 * AMQPS, `/messages/devicebound`).
 *
 * Every message asks for full delivery feedback (`ack: 'full'`), carries the alert key as the `alertId` application
 * property and a message id derived from it, so a device (or a feedback reader) can match it to the alert and drop a
 * repeated copy. One client per process: the SDK opens the connection on the first send and re-opens it after a
 * drop.
 *
 * Needs a shared access policy with `ServiceConnect` (connection string) or, identity-based, a data-plane role that
 * can send cloud-to-device messages, such as "IoT Hub Data Contributor".
 */

import iothub from 'azure-iothub';
import type { Client } from 'azure-iothub';
import { Message } from 'azure-iothub/dist/common-core/message.js';
import type { RetryPolicy } from 'azure-iothub/dist/common-core/retry_policy.js';
import type { IotHubServiceConnection } from '../connectionCredential.js';
import { RoutingError } from '../errors.js';
import type { DeviceNotification, DeviceNotifier, NotifyResult } from './deviceNotification.js';

export interface IotHubDeviceNotifierOptions {
  /**
   * The SDK's retry policy for connecting and sending. Default: {@link boundedRetryPolicy}, because the SDK's own
   * default retries for up to four minutes, which would hold the Service Bus message that long; redelivery is the
   * longer-term retry. Tests pass the SDK's `NoRetry`.
   */
  retryPolicy?: RetryPolicy;
}

export interface IotHubDeviceNotifier extends DeviceNotifier {
  /** Closes the AMQP connection; the next `notify` opens a new one. */
  close(): Promise<void>;
}

/**
 * SDK error names that retrying the same message cannot fix. `DeviceMaximumQueueDepthExceededError` is here too: a
 * device that has not collected 50 messages will not collect them within a redelivery, and the e-mail already went
 * out.
 */
const PERMANENT_ERRORS = new Set([
  'DeviceNotFoundError',
  'DeviceMaximumQueueDepthExceededError',
  'MessageTooLargeError',
  'ArgumentError',
  'ArgumentOutOfRangeError',
  'UnauthorizedError',
  'NotImplementedError',
  'IotHubNotFoundError',
  'IoTHubSuspendedError',
  'ReferenceError',
]);

/** At most `retries` quick retries of transient failures (250 ms, 500 ms, ...), then give up to the caller. */
export function boundedRetryPolicy(retries = 2, firstDelayMs = 250): RetryPolicy {
  return {
    nextRetryTimeout: (retryCount) => (retryCount > retries ? -1 : firstDelayMs * 2 ** (retryCount - 1)),
    shouldRetry: (error) => !PERMANENT_ERRORS.has(nameOf(error)),
  };
}

export function createIotHubDeviceNotifier(
  connection: IotHubServiceConnection,
  options: IotHubDeviceNotifierOptions = {},
): IotHubDeviceNotifier {
  let client: Client;
  try {
    client =
      'connectionString' in connection
        ? iothub.Client.fromConnectionString(connection.connectionString)
        : iothub.Client.fromTokenCredential(connection.hostName, connection.credential);
  } catch (error) {
    // The SDK names the missing part of a connection string and never echoes the key.
    throw new RoutingError('ConfigInvalid', `IoT Hub connection for device notifications is not valid: ${messageOf(error)}`, {
      cause: error,
    });
  }
  client.setRetryPolicy(options.retryPolicy ?? boundedRetryPolicy());

  return {
    async notify(notification: DeviceNotification): Promise<NotifyResult> {
      const message = new Message(
        JSON.stringify({
          alertId: notification.alertId,
          severity: notification.severity,
          enqueuedTime: notification.enqueuedTime,
          summary: notification.summary,
        }),
      );
      message.messageId = notification.messageId;
      message.ack = 'full';
      message.contentType = 'application/json';
      message.contentEncoding = 'utf-8';
      message.properties.add('alertId', notification.alertId);
      message.properties.add('severity', notification.severity);
      try {
        await client.send(notification.deviceId, message);
        return { status: 'sent' };
      } catch (error) {
        const name = nameOf(error);
        if (PERMANENT_ERRORS.has(name)) return { status: 'failed', error: `${name}: ${messageOf(innerOf(error))}`, providerCode: name };
        throw new RoutingError(
          'DeviceNotificationFailed',
          `cloud-to-device message to '${notification.deviceId}' failed: ${name}: ${messageOf(innerOf(error))}`,
          { cause: error },
        );
      }
    },
    async close() {
      await client.close();
    },
  };
}

/**
 * The SDK error's type name. A failure while connecting or authenticating reaches `send` as a generic
 * `Error('AMQP Transport: Could not send message')` with the real error (e.g. `UnauthorizedError` from a refused
 * token) in its `amqpError` property.
 */
function nameOf(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'Error';
  const name = (error as { name?: unknown }).name;
  if (typeof name === 'string' && name !== 'Error') return name;
  const inner = (error as { amqpError?: unknown }).amqpError;
  if (inner !== undefined && inner !== error) {
    const innerName = nameOf(inner);
    if (innerName !== 'Error') return innerName;
  }
  const ctor = (error as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof ctor === 'string' ? ctor : 'Error';
}

function innerOf(error: unknown): unknown {
  const inner = typeof error === 'object' && error !== null ? (error as { amqpError?: unknown }).amqpError : undefined;
  return inner instanceof Error ? inner : error;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
