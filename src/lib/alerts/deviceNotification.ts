/**
 * The device-notification port: after an alert e-mail went out, optionally tell the alerting device (a
 * cloud-to-device message), so that a local display or buzzer can show that a person has been alerted.
 *
 * Contract of {@link DeviceNotifier.notify}, mirroring the e-mail port (docs/adr/0005-email-senders.md):
 * - resolves `{ status: 'sent' }` when IoT Hub accepted the message into the device's queue;
 * - resolves `{ status: 'failed' }` when retrying cannot help: the device does not exist, its queue is full (IoT Hub
 *   keeps at most 50 messages per device), the message is refused as too large, or the credentials are refused;
 * - throws a transient `DeviceNotificationFailed` when the same notification may succeed later.
 *
 * Repeating a notification for the same alert sends the same `messageId`, so a device can drop the copy.
 */

export interface DeviceNotification {
  deviceId: string;
  /** The alert key; becomes the `alertId` application property. */
  alertId: string;
  /** A UUID derived from the alert key: the same alert always gets the same message id. */
  messageId: string;
  severity: string;
  /** The alerting message's enqueued time (ISO 8601), when known. */
  enqueuedTime: string | null;
  /** The e-mail's subject, so the device can show what was sent. */
  summary: string;
}

export type NotifyResult = { status: 'sent' } | { status: 'failed'; error: string; providerCode?: string };

export interface DeviceNotifier {
  notify(notification: DeviceNotification): Promise<NotifyResult>;
}
