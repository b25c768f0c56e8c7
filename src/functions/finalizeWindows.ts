/**
 * Every minute: close the windows of partitions that have gone idle (see src/lib/aggregate/windowFinalizer.ts).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { windowFinalizerFromServices, type WindowFinalizer } from '../lib/aggregate/windowFinalizer.js';
import { processServices } from '../lib/runtime.js';

let finalizer: Promise<WindowFinalizer> | undefined;

function windowFinalizer(): Promise<WindowFinalizer> {
  finalizer ??= processServices()
    .then(windowFinalizerFromServices)
    .catch((error: unknown) => {
      finalizer = undefined;
      throw error;
    });
  return finalizer;
}

export async function finalizeWindows(_timer: Timer, context: InvocationContext): Promise<void> {
  const result = await (await windowFinalizer()).finalizeIdlePartitions();
  const advanced = result.advanced.map((a) => `${a.partition}→${a.watermark}`).join(' ');
  context.log(`finalizeWindows: ${result.partitions} partitions, ${result.advanced.length} idle advanced${advanced ? `: ${advanced}` : ''}`);
}

app.timer('finalizeWindows', { schedule: '0 * * * * *', handler: finalizeWindows });
