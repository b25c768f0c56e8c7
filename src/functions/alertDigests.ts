/**
 * alertDigests: every minute, sends the digests that are due (alerts held back by a device's quiet period, the
 * send budget or a throttling pause). Registration and logging only; the runner is src/lib/alerts/digestRunner.ts.
 *
 * A run that the budget or the e-mail service cuts short is not a failure: what is left stays pending and the next
 * run continues. Storage errors throw, so the invocation shows as failed; the next run retries from the same state.
 */

import { app, type InvocationContext, type Timer } from '@azure/functions';
import { processAlertServices, type AlertServices } from '../lib/alerts/alertServices.js';
import type { DigestRunSummary } from '../lib/alerts/digestRunner.js';

export function alertDigestsHandler(getAlerts: () => Promise<Pick<AlertServices, 'digests'>> = processAlertServices) {
  return async (_timer: Timer, context: InvocationContext): Promise<DigestRunSummary> => {
    const alerts = await getAlerts();
    const summary = await alerts.digests.run();
    const line = `alertDigests: ${JSON.stringify(summary)}`;
    if (summary.failed.length > 0 || summary.interrupted !== undefined) context.warn(line);
    else if (summary.due > 0) context.log(line);
    return summary;
  };
}

const run = alertDigestsHandler();

app.timer('alertDigests', {
  // Second 0 of every minute (NCRONTAB with seconds). The quiet period and the budget work in minutes.
  schedule: '0 * * * * *',
  handler: async (timer, context) => {
    await run(timer, context);
  },
});
