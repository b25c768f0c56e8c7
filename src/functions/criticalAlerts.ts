/**
 * criticalAlerts: the Service Bus queue IoT Hub routes `level="critical"` messages to, turned into e-mails a person
 * can act on (issue #5). Registration and payload adaptation only; the handler is src/lib/alerts.
 *
 * `dataType: 'binary'` makes the host hand over the message body as bytes (a Buffer); without it the Node library
 * gets a string it JSON-parses, and a binary or non-UTF-8 body would be lost. The trigger metadata carries the
 * application properties (`iothub-connection-device-id`, enrichments, `level`) with their first letter lower-cased.
 *
 * Retry meaning: the handler returns a value for every permanent outcome (quarantined, duplicate, not an alert) and
 * the invocation succeeds, so the message is completed. Only transient failures throw; the message is then
 * abandoned and Service Bus redelivers it (up to the queue's max delivery count, then the dead-letter queue).
 */

import { app, type InvocationContext, type ServiceBusQueueFunctionOptions } from '@azure/functions';
import { processAlertServices, type AlertServices } from '../lib/alerts/alertServices.js';
import type { AlertOutcome } from '../lib/alerts/criticalAlertHandler.js';
import { decodeServiceBusMessage } from '../lib/message/serviceBus.js';

export function criticalAlertsHandler(getAlerts: () => Promise<Pick<AlertServices, 'handler' | 'settings'>> = processAlertServices) {
  return async (message: unknown, context: InvocationContext): Promise<AlertOutcome> => {
    const alerts = await getAlerts();
    const routed = decodeServiceBusMessage(message, context.triggerMetadata ?? {}, alerts.settings.queueName ?? undefined);
    const outcome = await alerts.handler.handle(routed);
    const line = `criticalAlerts: ${outcome.outcome} ${JSON.stringify(outcome)}`;
    if (outcome.outcome === 'quarantined') context.warn(line);
    else context.log(line);
    return outcome;
  };
}

const handle = criticalAlertsHandler();

const options: ServiceBusQueueFunctionOptions & { dataType: 'binary' } = {
  connection: 'SERVICEBUS_CONNECTION',
  queueName: '%CRITICAL_QUEUE_NAME%',
  dataType: 'binary',
  // The outcome is for tests and logs; handed to the host it would only be passed back and ignored.
  handler: async (message, context) => {
    await handle(message, context);
  },
};

app.serviceBusQueue('criticalAlerts', options);
