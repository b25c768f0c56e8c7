/**
 * For the CLI: the checks and the aggregation section of a routing.config.json, validated as at start-up (every
 * problem in one ConfigInvalid error), or the built-in defaults when there is no file.
 */
import { defaultChecksConfig, type ChecksConfig } from '../checks/expectations.js';
import { loadRoutingConfig } from '../config.js';
import { DEFAULT_AGGREGATION_CONFIG, aggregationConfigOf, type AggregationConfig } from './aggregationConfig.js';

export interface AggregationConfigFile {
  checks: ChecksConfig;
  aggregation: AggregationConfig;
  /** Where it came from, for messages: the path, or "built-in defaults". */
  source: string;
}

export async function loadAggregationConfigFile(file: string | undefined): Promise<AggregationConfigFile> {
  if (file === undefined) return { checks: defaultChecksConfig(), aggregation: DEFAULT_AGGREGATION_CONFIG, source: 'built-in defaults' };
  const routing = await loadRoutingConfig(file);
  return { checks: routing.checks, aggregation: aggregationConfigOf(routing), source: file };
}
