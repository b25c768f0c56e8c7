import { createReadStream } from 'node:fs';
import { checkMessage, type Finding } from '../../lib/checks/checks.js';
import { defaultChecksConfig, type ChecksConfig } from '../../lib/checks/expectations.js';
import { ENDPOINT_NAMES, type EndpointName, type Outcome } from '../../lib/checks/reasons.js';
import { loadRoutingConfig } from '../../lib/config.js';
import { readArchive } from '../../lib/message/readArchive.js';
import { EXIT, parseCommandArgs, routingConfigPath, UsageError, writeLine, type CliIo } from '../io.js';

export const checkUsage = `iot-routing check <file> [--config PATH] [--endpoint archive|events|criticalQueue] [--format text|ndjson]
  Decodes an archive file and runs the enrichment and encoding checks on every message as the given endpoint
  (default archive) would, with routing.config.json (default ./routing.config.json when present, else defaults).
  Prints each message's outcome and a summary by reason code with a hint. Exit 0 when nothing would be
  quarantined, 3 otherwise (a truncated or corrupt file counts), 1 for usage errors.`;

interface ReasonTally {
  count: number;
  outcome: Outcome;
  example: string;
  /** The findings' own hints, each once: a code's advice can depend on the message (BodyBase64 on a text body). */
  hints: Set<string>;
}

async function checksFor(given: string | undefined): Promise<{ checks: ChecksConfig; source: string }> {
  const path = await routingConfigPath(given);
  if (path === undefined) return { checks: defaultChecksConfig(), source: 'built-in defaults' };
  return { checks: (await loadRoutingConfig(path)).checks, source: path };
}

export async function checkCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      endpoint: { type: 'string', default: 'archive' },
      format: { type: 'string', default: 'text' },
    },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('check takes exactly one file');
  if (!(ENDPOINT_NAMES as readonly string[]).includes(values.endpoint)) {
    throw new UsageError(`--endpoint must be one of ${ENDPOINT_NAMES.join(', ')}`);
  }
  if (values.format !== 'text' && values.format !== 'ndjson') throw new UsageError('--format must be text or ndjson');
  const endpoint = values.endpoint as EndpointName;
  const { checks, source } = await checksFor(values.config);
  const now = new Date();

  const outcomes: Record<Outcome, number> = { accept: 0, warn: 0, quarantine: 0 };
  const reasons = new Map<string, ReasonTally>();
  let index = 0;
  let damaged = false;
  for await (const event of readArchive(createReadStream(file, { highWaterMark: 1 << 20 }), { name: file })) {
    if (event.type === 'end') {
      const { damage } = event.summary;
      if (damage !== null) {
        damaged = true;
        io.stderr.write(`${file}: ${damage.code} at byte ${damage.byteOffset}: ${damage.detail}\n`);
      }
      continue;
    }
    for (const message of event.messages) {
      const result = checkMessage(message, endpoint, checks, now);
      outcomes[result.outcome] += 1;
      for (const finding of result.findings) tally(reasons, finding);
      if (values.format === 'ndjson') {
        await writeLine(
          io.stdout,
          JSON.stringify({
            index,
            deviceId: message.deviceId,
            ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
            enqueuedTime: message.enqueuedTime?.toISOString() ?? null,
            outcome: result.outcome,
            findings: result.findings,
          }),
        );
      } else {
        const codes = result.findings.map((f) => `${f.code}${f.property === undefined ? '' : `(${f.property})`}`).join(' ');
        await writeLine(
          io.stdout,
          `#${index} ${message.deviceId ?? '(no device)'} ${message.enqueuedTime?.toISOString() ?? '(no time)'} ${result.outcome}${codes === '' ? '' : ` ${codes}`}`,
        );
      }
      index += 1;
    }
  }

  const summary = [
    `${file}: ${index} message${index === 1 ? '' : 's'} checked as endpoint ${endpoint} (${source}): ${outcomes.accept} accept, ${outcomes.warn} warn, ${outcomes.quarantine} quarantine${damaged ? '; the file is damaged and would be quarantined' : ''}`,
    ...[...reasons.entries()]
      .sort((a, b) => b[1].count - a[1].count)
      .map(([code, t]) => `  ${code} x${t.count} (${t.outcome}): ${t.example}${[...t.hints].map((hint) => `\n    hint: ${hint}`).join('')}`),
  ].join('\n');
  // The summary goes to stderr in ndjson mode so that stdout stays machine-readable.
  (values.format === 'ndjson' ? io.stderr : io.stdout).write(`${summary}\n`);
  return outcomes.quarantine > 0 || damaged ? EXIT.wouldQuarantine : EXIT.ok;
}

function tally(reasons: Map<string, ReasonTally>, finding: Finding): void {
  const current = reasons.get(finding.code);
  if (current === undefined) {
    reasons.set(finding.code, { count: 1, outcome: finding.outcome, example: finding.detail, hints: new Set([finding.hint]) });
  } else {
    current.count += 1;
    current.hints.add(finding.hint);
  }
}
