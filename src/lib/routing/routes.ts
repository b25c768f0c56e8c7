/**
 * Route evaluation: which endpoints IoT Hub delivers a message to, and why.
 *
 * [d2c] learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-d2c:
 * - "Each message is routed to all endpoints whose routing queries it matches" — every matching route delivers;
 * - "If a message matches multiple routes that point to the same endpoint, IoT Hub delivers the message to that
 *   endpoint only once";
 * - "The fallback route sends all the messages that don't satisfy query conditions on any of the existing routes
 *   to the built-in endpoint (messages/events)" — here the endpoint named `events`.
 */

import type { EndpointName, RouteConfig } from '../config.js';
import {
  describeReference,
  evaluateExpression,
  evaluateRoute,
  prepareContext,
  typeMismatches,
  type PreparedContext,
  type RouteContext,
} from './evaluate.js';
import { parseRouteQuery, printRouteQuery, referencesOf, stringLiteralSpans, type Expr, type ParseResult, type ReferenceExpr } from './parser.js';

/** The endpoint the fallback route delivers to: IoT Hub's built-in, Event Hubs-compatible endpoint. */
export const FALLBACK_ENDPOINT: EndpointName = 'events';

export interface CompiledRoute {
  name: string;
  /** The condition as configured. */
  condition: string;
  endpoint: EndpointName;
  enabled: boolean;
  ast: Expr;
  /** Distinct references in source order, resolved only when a route does not match and needs explaining. */
  references: ReferenceExpr[];
  usesBody: boolean;
  usesTwin: boolean;
}

export type CompileResult = { compiled: CompiledRoute[] } | { errors: string[] };

function compileOne(route: RouteConfig, ast: Expr): CompiledRoute {
  const seen = new Set<string>();
  const references: ReferenceExpr[] = [];
  for (const ref of referencesOf(ast)) {
    const text = printRouteQuery(ref);
    if (seen.has(text)) continue;
    seen.add(text);
    references.push(ref);
  }
  return {
    name: route.name,
    condition: route.condition,
    endpoint: route.endpoint,
    enabled: route.enabled,
    ast,
    references,
    usesBody: references.some((r) => r.root === 'body'),
    usesTwin: references.some((r) => r.root === 'twin'),
  };
}

/** ‘ ’ ‚ ‛ “ ” „ ‟ « » ‹ ›: quotes that word processors and chat clients put in place of ' and ". */
const TYPOGRAPHIC_QUOTES = /[\u2018-\u201f\u00ab\u00bb\u2039\u203a]/;

/**
 * The position of the first typographic quote outside the condition's string literals, or -1. Inside a literal
 * (`site = 'Joe’s Plant'`) it is text the route compares, as meant; outside, the lexer takes it into a name. The
 * literals are the parser's own (`stringLiteralSpans`); past a token the lexer refuses, the rest counts as outside.
 */
function typographicQuoteOutsideLiterals(condition: string): number {
  let from = 0;
  for (const literal of [...stringLiteralSpans(condition), { start: condition.length, end: condition.length }]) {
    const at = condition.slice(from, literal.start).search(TYPOGRAPHIC_QUOTES);
    if (at >= 0) return from + at;
    from = literal.end;
  }
  return -1;
}

/**
 * Conditions IoT Hub accepts but almost surely not as meant: typographic quotes parse as part of property names
 * (the route compares two names and never matches), which is how `level="critical"` comes out of a word processor.
 * Warnings, not errors: IoT Hub saves such a route, and the app must load a config the hub accepts.
 */
export function routeWarnings(routes: ReadonlyArray<{ name?: unknown; condition?: unknown }>): string[] {
  const warnings: string[] = [];
  routes.forEach((route, i) => {
    const condition = route.condition;
    if (typeof condition !== 'string') return;
    const at = typographicQuoteOutsideLiterals(condition);
    if (at < 0) return;
    const name = typeof route.name === 'string' ? ` ("${route.name}")` : '';
    warnings.push(
      `routes[${i}]${name}.condition holds a typographic quote (${condition[at]!} at ${at}): IoT Hub reads it as part of a ` +
        `property name, so the route never matches; use straight quotes: "critical" or 'critical'`,
    );
  });
  return warnings;
}

/**
 * Parses every route's condition once. Disabled routes are compiled too, because IoT Hub refuses to save a route
 * whose query does not parse, enabled or not. Errors name the route by index, in the form config validation
 * reports: `routes[2].condition: unexpected token ')' at 14`.
 */
export function compileRoutes(routes: readonly RouteConfig[]): CompileResult {
  const compiled: CompiledRoute[] = [];
  const errors: string[] = [];
  routes.forEach((route, i) => {
    const parsed = parseCached(route.condition);
    if ('error' in parsed) errors.push(`routes[${i}].condition: ${parsed.error.message}`);
    else compiled.push(compileOne(route, parsed.ast));
  });
  return errors.length > 0 ? { errors } : { compiled };
}

/*
 * evaluateRoutes also accepts plain RouteConfig[] (the CLI passes what it read); parsing each condition per message
 * would dominate the local hub's cost, so parses are memoised by condition text. Conditions come from one config
 * file, so the cache stays small; the bound only guards against a caller generating conditions.
 */
const PARSE_CACHE_LIMIT = 512;
const parseCache = new Map<string, ParseResult>();

function parseCached(condition: string): ParseResult {
  let parsed = parseCache.get(condition);
  if (parsed === undefined) {
    parsed = parseRouteQuery(condition);
    if (parseCache.size >= PARSE_CACHE_LIMIT) parseCache.clear();
    parseCache.set(condition, parsed);
  }
  return parsed;
}

export interface RouteMatch {
  route: string;
  endpoint: EndpointName;
}

export interface RoutesEvaluation {
  /** Endpoints the message is delivered to, each once, in the order of the first route that chose it. */
  endpoints: EndpointName[];
  /** Every enabled route whose condition was true. */
  matched: RouteMatch[];
  /** True when the fallback route delivered the message (to {@link FALLBACK_ENDPOINT}). */
  fallback: boolean;
  /**
   * One line per route, then one for the fallback route (when it is enabled, or when its absence drops the
   * message), saying what happened and why. Empty when `explain: false`.
   */
  explanations: string[];
}

function isCompiled(route: RouteConfig | CompiledRoute): route is CompiledRoute {
  return (route as Partial<CompiledRoute>).ast !== undefined;
}

function label(route: { name: string; endpoint: EndpointName }): string {
  return `route "${route.name}" → ${route.endpoint}`;
}

export interface EvaluateRoutesOptions {
  /**
   * Build `explanations` (default true). The local hub turns this off for throughput: explaining a miss resolves
   * every reference of the route again.
   */
  explain?: boolean;
}

/**
 * Evaluates every route against one message. Pass the result of {@link compileRoutes} on hot paths; plain
 * RouteConfig[] works too (a condition that does not parse then matches nothing and says so).
 *
 * `fallbackRoute`: whether the hub's fallback route is enabled. It delivers to `events` only when no enabled route
 * matched; a route to `events` that matched counts as a match, not as the fallback.
 */
export function evaluateRoutes(
  routes: readonly (RouteConfig | CompiledRoute)[],
  fallbackRoute: boolean,
  context: RouteContext,
  options: EvaluateRoutesOptions = {},
): RoutesEvaluation {
  const explain = options.explain ?? true;
  const prepared = prepareContext(context);
  const endpoints: EndpointName[] = [];
  const matched: RouteMatch[] = [];
  const explanations: string[] = [];

  for (const route of routes) {
    let compiled: CompiledRoute;
    if (isCompiled(route)) {
      compiled = route;
    } else {
      const parsed = parseCached(route.condition);
      if ('error' in parsed) {
        if (explain) explanations.push(
          `${label(route)}: not matched: the condition does not parse (${parsed.error.message}); IoT Hub would not accept this route`,
        );
        continue;
      }
      compiled = compileOne(route, parsed.ast);
    }
    if (!compiled.enabled) {
      if (explain) explanations.push(`${label(compiled)}: disabled`);
      continue;
    }
    if (evaluateRoute(compiled.ast, prepared)) {
      matched.push({ route: compiled.name, endpoint: compiled.endpoint });
      if (!endpoints.includes(compiled.endpoint)) endpoints.push(compiled.endpoint);
      if (explain) explanations.push(`${label(compiled)}: matched (${compiled.condition})`);
    } else if (explain) {
      explanations.push(explainMiss(compiled, prepared));
    }
  }

  let fallback = false;
  if (matched.length > 0) {
    if (fallbackRoute && explain) {
      explanations.push(`fallback route → ${FALLBACK_ENDPOINT}: not used, because ${matched.length === 1 ? 'a route' : 'routes'} matched`);
    }
  } else if (fallbackRoute) {
    fallback = true;
    endpoints.push(FALLBACK_ENDPOINT);
    if (explain) explanations.push(`fallback route → ${FALLBACK_ENDPOINT}: delivered, because no route matched`);
  } else if (explain) {
    explanations.push('fallback route is disabled and no route matched: IoT Hub drops the message');
  }
  return { endpoints, matched, fallback, explanations };
}

/**
 * Why a route did not match. A false condition is stated plainly; an undefined one (which IoT Hub also treats as
 * false, logging an error in its routes resource logs) is traced to its causes: the `$body` declaration trap,
 * missing properties, a missing twin, and comparisons between different types.
 */
function explainMiss(route: CompiledRoute, context: PreparedContext): string {
  const value = evaluateExpression(route.ast, context);
  const head = `${label(route)}: not matched`;
  if (value === false) return `${head}: ${route.condition} is false`;

  const reasons: string[] = [];
  const body = context.body();
  if (route.usesBody && !body.available) {
    reasons.push(`route "${route.name}" references $body but ${body.reason}, so $body is undefined`);
  }
  for (const ref of route.references) {
    const text = printRouteQuery(ref);
    const description = describeReference(ref, text, context);
    if (description.missing === undefined) continue;
    // The $body declaration problem is already said once above.
    if (ref.root === 'body' && !body.available && route.usesBody) continue;
    reasons.push(`${text} ${description.missing}`);
  }
  for (const mismatch of typeMismatches(route.ast, context)) {
    const expr = printRouteQuery(mismatch.node);
    const hint = mismatch.left === 'string' || mismatch.right === 'string'
      ? mentionsAppProperty(mismatch.node)
        ? ' (application properties are always strings: compare with a string, or use AS_NUMBER(...))'
        : ''
      : '';
    reasons.push(`${expr} compares a ${mismatch.left} with a ${mismatch.right}, which is undefined${hint}`);
  }
  const what = value === undefined || value === null ? `${value === null ? 'null' : 'undefined'}` : `not a Boolean`;
  const because = reasons.length > 0 ? `: ${reasons.join('; ')}` : '';
  return `${head}: the condition is ${what}, which IoT Hub treats as false${because}`;
}

function mentionsAppProperty(expr: Expr): boolean {
  return referencesOf(expr).some((r) => r.root === 'app' || r.root === 'system');
}
