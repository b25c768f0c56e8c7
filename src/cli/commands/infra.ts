import { readFile, writeFile } from 'node:fs/promises';
import { parseRoutingConfig } from '../../lib/config.js';
import { configInvalid, isRoutingError } from '../../lib/errors.js';
import { checkArmTemplate } from '../../lib/infra/arm.js';
import { buildArmTemplate, infraProblems, type ArmTemplateOptions } from '../../lib/infra/template.js';
import { EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';
import { routeWarnings } from '../../lib/routing/routes.js';

export const infraUsage = `iot-routing infra [--config PATH] [--out FILE]
  Generates the ARM template (JSON) for everything the app runs on, from routing.config.json (default
  ./routing.config.json): the IoT hub with its routes, endpoints, fallback route, enrichments and consumer group;
  storage and containers; the Service Bus queue; Communication Services e-mail; the Function App (Flex
  Consumption, Node 22, managed identity, every app setting the functions read); role assignments; the Event Grid
  subscription that delivers the archive's BlobCreated events to archiveIngest. Prints to stdout, or writes FILE with --out. Exit 1 listing every
  problem when IoT Hub would refuse the configuration. Deploying it: docs/deployment.md.`;

/**
 * IoT Hub's `avrodeflate` encoding reads back like `avro`, so the parsed config does not keep the difference; the
 * file does, and the hub must be told.
 */
function encodingOverride(raw: unknown): Pick<ArmTemplateOptions, 'archiveEncoding'> {
  const archive = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['archive'] : undefined;
  const encoding = typeof archive === 'object' && archive !== null ? (archive as Record<string, unknown>)['encoding'] : undefined;
  return typeof encoding === 'string' && encoding.toLowerCase() === 'avrodeflate' ? { archiveEncoding: 'AvroDeflate' } : {};
}

export async function infraCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', default: 'routing.config.json' }, out: { type: 'string' } },
  });
  if (positionals.length > 0) throw new UsageError(`infra takes no positional arguments (got ${positionals.join(' ')})`);
  if (values.out === '') throw new UsageError('--out needs a file name');
  const file = values.config;

  try {
    // Config and template problems are reported together, so one edit of the file fixes them all.
    const problems: string[] = [];
    let raw: unknown = {};
    try {
      raw = JSON.parse(await readFile(file, 'utf8')) as unknown;
    } catch (error) {
      problems.push(`${file}: ${error instanceof SyntaxError ? `not valid JSON: ${error.message}` : (error as Error).message}`);
    }
    const routing = parseRoutingConfig(raw, problems);
    const options: ArmTemplateOptions = encodingOverride(raw);
    // What the config parser already reported at a path is not reported again in IoT Hub's words.
    const reported = new Set(problems.map((p) => p.split(':')[0]));
    problems.push(...infraProblems(routing, options).filter((p) => !reported.has(p.split(':')[0])));
    if (problems.length > 0) {
      throw configInvalid(`${file} cannot be deployed`, problems);
    }

    for (const warning of routeWarnings(routing.routes)) io.stderr.write(`iot-routing infra: warning: ${warning}\n`);
    const template = buildArmTemplate(routing, options);
    const structural = checkArmTemplate(template);
    // A structural problem is a defect of the generator, not of the config: refuse to print a template ARM rejects.
    if (structural.length > 0) throw new Error(`the generated template is inconsistent:\n- ${structural.join('\n- ')}`);

    const text = JSON.stringify(template, null, 2);
    if (values.out !== undefined) {
      await writeFile(values.out, `${text}\n`);
      io.stderr.write(`${values.out}: ARM template with ${template.resources.length} resources for IoT hub ${routing.iotHubName}\n`);
    } else {
      await writeLine(io.stdout, text);
    }
    return EXIT.ok;
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') {
      io.stderr.write(`iot-routing infra: ${error.message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}
