/**
 * Azure Resource Manager template JSON: the shapes we emit, expression helpers, and a structural checker.
 *
 * There is no `az` or `bicep` where this is built and tested, so the checker does what `az deployment group
 * validate` would catch first and what a hand-written template most often gets wrong: a resource without type,
 * apiVersion or name, a `dependsOn` that names no resource of the template (ARM refuses the whole deployment),
 * dependency cycles, a `parameters('x')` or `variables('x')` that is not declared, a declared parameter nobody uses,
 * and, for IoT Hub, a route or enrichment naming an endpoint the hub does not have.
 *
 * Resource names are written in one of three forms, and ids are derived from them the way ARM derives them:
 * `[variables('x')]` (one segment), `[format('{0}/{1}', a, b)]` (child resources), or a literal `'parent/child'`.
 * Extension resources (role assignments) add a `scope` written as `[format('Ns/type/{0}', a)]`.
 */

export type ArmValue = string | number | boolean | null | ArmValue[] | { [key: string]: ArmValue };

export type ArmParameterType = 'string' | 'securestring' | 'int' | 'bool' | 'object' | 'array';

export interface ArmParameter {
  type: ArmParameterType;
  defaultValue?: ArmValue;
  allowedValues?: ArmValue[];
  minValue?: number;
  maxValue?: number;
  minLength?: number;
  maxLength?: number;
  metadata: { description: string };
}

export interface ArmResource {
  type: string;
  apiVersion: string;
  name: string;
  [property: string]: ArmValue | undefined;
}

export interface ArmOutput {
  type: 'string' | 'int' | 'bool' | 'object' | 'array';
  value: ArmValue;
}

export interface ArmTemplate {
  $schema: string;
  contentVersion: string;
  metadata: Record<string, ArmValue>;
  parameters: Record<string, ArmParameter>;
  variables: Record<string, ArmValue>;
  resources: ArmResource[];
  outputs: Record<string, ArmOutput>;
}

export const DEPLOYMENT_TEMPLATE_SCHEMA = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#';

// ---- expressions ---------------------------------------------------------------------------------------------

/** A string literal inside an expression; ARM escapes a quote by doubling it. */
export function lit(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export function param(name: string): string {
  return `parameters('${name}')`;
}

export function variable(name: string): string {
  return `variables('${name}')`;
}

/** A JSON string ARM evaluates: `[body]`. */
export function expr(body: string): string {
  return `[${body}]`;
}

/** A JSON string ARM takes literally. A leading `[` would make it an expression, so ARM's escape `[[` is used. */
export function literal(text: string): string {
  return text.startsWith('[') ? `[${text}` : text;
}

/** A resource as ARM identifies it: its type and one expression per name segment. */
export interface ResourceRef {
  type: string;
  /** One ARM expression per name segment, e.g. `variables('storageAccountName')`, `'default'`. */
  parts: readonly string[];
}

export function resourceIdExpr(ref: ResourceRef): string {
  return `resourceId(${[lit(ref.type), ...ref.parts].join(', ')})`;
}

/** The `name` property of a resource: the segments joined by `/`. */
export function resourceName(ref: ResourceRef): string {
  if (ref.parts.length === 1) return expr(ref.parts[0] ?? "''");
  const format = ref.parts.map((_, i) => `{${i}}`).join('/');
  return expr(`format(${[lit(format), ...ref.parts].join(', ')})`);
}

/** The `scope` property of an extension resource placed on `ref`: `Ns/type/{0}/childType/{1}`. */
export function resourceScope(ref: ResourceRef): string {
  const [namespace = '', ...types] = ref.type.split('/');
  const format = [namespace, ...types.flatMap((t, i) => [t, `{${i}}`])].join('/');
  return expr(`format(${[lit(format), ...ref.parts].join(', ')})`);
}

export function dependsOnId(ref: ResourceRef): string {
  return expr(resourceIdExpr(ref));
}

/** The id of an extension resource (a role assignment) for `dependsOn`. */
export function extensionDependsOnId(scope: ResourceRef, type: string, nameExpression: string): string {
  return expr(`extensionResourceId(${resourceIdExpr(scope)}, ${lit(type)}, ${nameExpression})`);
}

/**
 * Splits the arguments of an expression call at top-level commas, honouring quotes (with `''` escapes) and
 * nested parentheses and brackets. Whitespace around each argument is dropped.
 */
export function splitArguments(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "'") {
        if (text[i + 1] === "'") i++;
        else quoted = false;
      }
      continue;
    }
    if (c === "'") quoted = true;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last !== '' || args.length > 0) args.push(last);
  return args;
}

function unquote(expression: string): string | null {
  return /^'(?:[^']|'')*'$/.test(expression) ? expression.slice(1, -1).replaceAll("''", "'") : null;
}

/** The name segments of a `name` or `scope` value, as expressions; null when the form is not one we write. */
function segmentsOf(value: string): string[] | null {
  if (!value.startsWith('[') || value.startsWith('[[')) return value.split('/').map(lit);
  if (!value.endsWith(']')) return null;
  const body = value.slice(1, -1).trim();
  const format = /^format\((.*)\)$/s.exec(body);
  if (format === null) return [body];
  const [pattern = '', ...args] = splitArguments(format[1] ?? '');
  const text = unquote(pattern);
  if (text === null) return null;
  return text.split('/').map((segment) => {
    const index = /^\{(\d+)\}$/.exec(segment);
    return index === null ? lit(segment) : (args[Number(index[1])] ?? lit(segment));
  });
}

/** `Ns/type/{0}/child/{1}` as a ResourceRef; null when the scope is not written in that form. */
function scopeRefOf(scope: string): ResourceRef | null {
  const segments = segmentsOf(scope);
  if (segments === null || segments.length < 3 || segments.length % 2 === 0) return null;
  const namespace = unquote(segments[0] ?? '');
  if (namespace === null) return null;
  const types: string[] = [];
  const parts: string[] = [];
  for (let i = 1; i < segments.length; i += 2) {
    const type = unquote(segments[i] ?? '');
    if (type === null) return null;
    types.push(type);
    parts.push(segments[i + 1] ?? "''");
  }
  return { type: [namespace, ...types].join('/'), parts };
}

/** The id ARM gives a resource of the template, in the form `dependsOn` entries are written; null if underivable. */
export function idOfResource(resource: ArmResource): string | null {
  const parts = segmentsOf(resource.name);
  if (parts === null) return null;
  const scope = resource['scope'];
  if (typeof scope === 'string') {
    const scopeRef = scopeRefOf(scope);
    if (scopeRef === null || parts.length !== 1) return null;
    return extensionDependsOnId(scopeRef, resource.type, parts[0] ?? "''");
  }
  return dependsOnId({ type: resource.type, parts });
}

// ---- structural check ----------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function* strings(value: unknown): Generator<string> {
  if (typeof value === 'string') yield value;
  else if (Array.isArray(value)) for (const item of value) yield* strings(item);
  else if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      yield key;
      yield* strings(item);
    }
  }
}

const REFERENCE = /\b(parameters|variables)\('((?:[^']|'')*)'\)/g;
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
/** Names IoT Hub keeps for itself; a custom endpoint may not take them. */
const RESERVED_ENDPOINT_NAMES = ['events', 'filenotifications', '$default', 'operationsmonitoringevents'];
const BUILT_IN_ENDPOINT = 'events';

function typeMatches(type: ArmParameterType, value: unknown): boolean {
  if (typeof value === 'string' && value.startsWith('[') && !value.startsWith('[[')) return true;
  switch (type) {
    case 'string':
    case 'securestring':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'bool':
      return typeof value === 'boolean';
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
  }
}

function checkIotHub(resource: ArmResource, problems: string[]): void {
  const at = `IoT hub ${resource.name}`;
  const routing = isObject(resource['properties']) ? resource['properties']['routing'] : undefined;
  if (!isObject(routing)) {
    problems.push(`${at}: no properties.routing`);
    return;
  }
  const endpoints = isObject(routing['endpoints']) ? routing['endpoints'] : {};
  const declared = new Set<string>();
  for (const [kind, list] of Object.entries(endpoints)) {
    for (const endpoint of Array.isArray(list) ? list : []) {
      const name = isObject(endpoint) && typeof endpoint['name'] === 'string' ? endpoint['name'] : '';
      if (name === '') problems.push(`${at}: an endpoint in ${kind} has no name`);
      else if (RESERVED_ENDPOINT_NAMES.includes(name.toLowerCase())) problems.push(`${at}: endpoint name "${name}" is reserved by IoT Hub`);
      else if (declared.has(name.toLowerCase())) problems.push(`${at}: endpoint name "${name}" is used twice (names are unique across endpoint types)`);
      declared.add(name.toLowerCase());
    }
  }
  const known = (name: unknown): boolean =>
    typeof name === 'string' && (name === BUILT_IN_ENDPOINT || declared.has(name.toLowerCase()));
  const routeNames = new Set<string>();
  const routes = Array.isArray(routing['routes']) ? routing['routes'] : [];
  for (const [i, route] of routes.entries()) {
    if (!isObject(route)) continue;
    const name = String(route['name']);
    if (routeNames.has(name.toLowerCase())) problems.push(`${at}: route name "${name}" is used twice`);
    routeNames.add(name.toLowerCase());
    const names = Array.isArray(route['endpointNames']) ? route['endpointNames'] : [];
    if (names.length !== 1) problems.push(`${at}: routes[${i}] (${name}) must name exactly one endpoint, names ${names.length}`);
    for (const endpoint of names) if (!known(endpoint)) problems.push(`${at}: routes[${i}] (${name}) names unknown endpoint "${String(endpoint)}"`);
  }
  const fallback = routing['fallbackRoute'];
  if (isObject(fallback)) {
    const names = Array.isArray(fallback['endpointNames']) ? fallback['endpointNames'] : [];
    if (names.length !== 1 || names[0] !== BUILT_IN_ENDPOINT) problems.push(`${at}: the fallback route must deliver to "${BUILT_IN_ENDPOINT}" only`);
  }
  const enrichments = Array.isArray(routing['enrichments']) ? routing['enrichments'] : [];
  for (const [i, enrichment] of enrichments.entries()) {
    if (!isObject(enrichment)) continue;
    const names = Array.isArray(enrichment['endpointNames']) ? enrichment['endpointNames'] : [];
    if (names.length === 0) problems.push(`${at}: enrichments[${i}] (${String(enrichment['key'])}) names no endpoint`);
    for (const endpoint of names) {
      if (!known(endpoint)) problems.push(`${at}: enrichments[${i}] (${String(enrichment['key'])}) names unknown endpoint "${String(endpoint)}"`);
    }
  }
}

/**
 * Structural problems of a template, all at once; an empty list means ARM would get as far as evaluating it.
 * Accepts any value so that it can check a template read back from a file.
 */
export function checkArmTemplate(template: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(template)) return ['the template is not a JSON object'];
  for (const key of ['$schema', 'contentVersion', 'parameters', 'variables', 'resources', 'outputs']) {
    if (!(key in template)) problems.push(`the template has no "${key}"`);
  }
  const parameters = isObject(template['parameters']) ? template['parameters'] : {};
  const variables = isObject(template['variables']) ? template['variables'] : {};
  const resources = Array.isArray(template['resources']) ? template['resources'] : [];

  for (const [name, spec] of Object.entries(parameters)) {
    if (!isObject(spec) || typeof spec['type'] !== 'string') {
      problems.push(`parameter ${name} has no type`);
      continue;
    }
    if ('defaultValue' in spec && !typeMatches(spec['type'] as ArmParameterType, spec['defaultValue'])) {
      problems.push(`parameter ${name}: defaultValue does not have type ${spec['type']}`);
    }
    for (const allowed of Array.isArray(spec['allowedValues']) ? spec['allowedValues'] : []) {
      if (!typeMatches(spec['type'] as ArmParameterType, allowed)) problems.push(`parameter ${name}: allowed value ${JSON.stringify(allowed)} does not have type ${spec['type']}`);
    }
  }

  const ids = new Map<string, number>();
  resources.forEach((resource, i) => {
    if (!isObject(resource)) {
      problems.push(`resources[${i}] is not an object`);
      return;
    }
    const label = `resources[${i}] (${String(resource['type'])} ${String(resource['name'])})`;
    if (typeof resource['type'] !== 'string' || !/^[A-Za-z]+\.[A-Za-z.]+(\/[A-Za-z]+)+$/.test(resource['type'])) {
      problems.push(`${label}: no valid type`);
    }
    if (typeof resource['apiVersion'] !== 'string' || !API_VERSION.test(resource['apiVersion'])) problems.push(`${label}: no valid apiVersion`);
    if (typeof resource['name'] !== 'string' || resource['name'] === '') {
      problems.push(`${label}: no name`);
      return;
    }
    const id = idOfResource(resource as ArmResource);
    if (id === null) {
      problems.push(`${label}: its id cannot be derived from name${'scope' in resource ? ' and scope' : ''}`);
      return;
    }
    if (ids.has(id)) problems.push(`${label}: the same resource is declared twice (${id})`);
    ids.set(id, i);
  });

  const edges = new Map<number, number[]>();
  resources.forEach((resource, i) => {
    if (!isObject(resource)) return;
    const dependsOn = resource['dependsOn'];
    if (dependsOn === undefined) return;
    if (!Array.isArray(dependsOn)) {
      problems.push(`resources[${i}]: dependsOn is not an array`);
      return;
    }
    const targets: number[] = [];
    for (const entry of dependsOn) {
      const target = typeof entry === 'string' ? ids.get(entry) : undefined;
      if (target === undefined) problems.push(`resources[${i}] (${String(resource['name'])}) depends on ${JSON.stringify(entry)}, which is no resource of the template`);
      else if (target === i) problems.push(`resources[${i}] (${String(resource['name'])}) depends on itself`);
      else targets.push(target);
    }
    edges.set(i, targets);
  });
  // One cycle is enough to report: breaking it usually breaks the others that share its edges.
  const state = new Map<number, 'visiting' | 'done'>();
  let cycle: number[] | null = null;
  const visit = (node: number, path: number[]): void => {
    if (state.get(node) === 'done' || cycle !== null) return;
    if (state.get(node) === 'visiting') {
      cycle = [...path.slice(path.indexOf(node)), node];
      return;
    }
    state.set(node, 'visiting');
    for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
    state.set(node, 'done');
  };
  for (const node of edges.keys()) visit(node, []);
  if (cycle !== null) problems.push(`dependency cycle: ${(cycle as number[]).map((n) => `resources[${n}]`).join(' -> ')}`);

  const used = { parameters: new Set<string>(), variables: new Set<string>() };
  for (const text of strings([template['variables'], template['resources'], template['outputs'], parameters])) {
    for (const match of text.matchAll(REFERENCE)) {
      const kind = match[1] as 'parameters' | 'variables';
      const name = (match[2] ?? '').replaceAll("''", "'");
      used[kind].add(name);
      const declared = kind === 'parameters' ? parameters : variables;
      if (!(name in declared)) problems.push(`${kind}('${name}') is used but not declared`);
    }
  }
  for (const name of Object.keys(parameters)) if (!used.parameters.has(name)) problems.push(`parameter ${name} is declared but never used`);
  for (const name of Object.keys(variables)) if (!used.variables.has(name)) problems.push(`variable ${name} is declared but never used`);

  for (const resource of resources) {
    if (isObject(resource) && resource['type'] === 'Microsoft.Devices/IotHubs') checkIotHub(resource as ArmResource, problems);
  }
  return [...new Set(problems)];
}
