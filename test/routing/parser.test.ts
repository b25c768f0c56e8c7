import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FUNCTIONS,
  FUNCTION_NAMES,
  MAX_NESTING,
  parseRouteQuery,
  printRouteQuery,
  referencesOf,
  type Expr,
  type FunctionName,
  type PathSegment,
} from '../../src/lib/routing/parser.js';

function ast(text: string): Expr {
  const result = parseRouteQuery(text);
  if ('error' in result) throw new Error(`expected ${JSON.stringify(text)} to parse: ${result.error.message}`);
  return result.ast;
}

function error(text: string) {
  const result = parseRouteQuery(text);
  if ('ast' in result) throw new Error(`expected ${JSON.stringify(text)} not to parse, got ${printRouteQuery(result.ast)}`);
  return result.error;
}

/** The AST without positions, for structural comparison. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'position' || key === 'end') continue;
    out[key] = shape(v);
  }
  return out;
}

/** Canonical text: a cheap way to assert the tree a condition parses to. */
function canonical(text: string): string {
  return printRouteQuery(ast(text));
}

describe('documented examples parse (learn.microsoft.com iot-hub-devguide-routing-query-syntax)', () => {
  const examples = [
    "$contentEncoding = 'UTF-8'",
    "processingPath = 'hot'",
    "$contentEncoding = 'UTF-8' AND processingPath = 'hot'",
    "$body.Weather.HistoricalData[0].Month = 'Feb' ",
    '$body.Weather.Temperature = 50 AND $body.Weather.IsEnabled ',
    'length($body.Weather.Location.State) = 2 ',
    "$body.Weather.Temperature = 50 AND processingPath = 'hot'",
    "$body[0] = 'Feb'",
    '$body.properties.desired.telemetryConfig.sendFrequency > 10',
    'is_defined($body.properties.desired.telemetryConfig.sendFrequency)',
    "$twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
    "$body.Weather.Temperature = 50 AND $twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
    '$twin.tags.deploymentLocation.floor = 1 ',
    // The routing tutorial and DESIGN.md.
    'level="critical"',
    'level="storage"',
    'true',
  ];
  it.each(examples)('%s', (text) => {
    expect(parseRouteQuery(text)).toHaveProperty('ast');
  });

  it('"$body.Weather.HistoricalData[0].Month" is a body path with an array index', () => {
    const expr = ast("$body.Weather.HistoricalData[0].Month = 'Feb'");
    expect(shape(expr)).toEqual({
      kind: 'binary',
      op: '=',
      left: {
        kind: 'reference',
        root: 'body',
        segments: [{ key: 'Weather' }, { key: 'HistoricalData' }, { index: 0 }, { key: 'Month' }],
      },
      right: { kind: 'literal', value: 'Feb' },
    });
  });

  it('"$twin.tags.deploymentLocation.floor = 1" is a twin path compared with a number', () => {
    expect(shape(ast('$twin.tags.deploymentLocation.floor = 1'))).toEqual({
      kind: 'binary',
      op: '=',
      left: { kind: 'reference', root: 'twin', segments: [{ key: 'tags' }, { key: 'deploymentLocation' }, { key: 'floor' }] },
      right: { kind: 'literal', value: 1 },
    });
  });

  it('"$contentEncoding" is a system property and "processingPath" an application property', () => {
    const refs = referencesOf(ast("$contentEncoding = 'UTF-8' AND processingPath = 'hot'"));
    expect(refs.map((r) => [r.root, r.segments])).toEqual([
      ['system', [{ key: 'contentEncoding' }]],
      ['app', [{ key: 'processingPath' }]],
    ]);
  });

  it.each(['$connectionDeviceId', '$connectionModuleId', '$enqueuedTime', '$iothub-enqueuedtime', '$dt-dataschema', '$dt-subject', '$messageId', '$correlationId', '$userId', '$iothub-interface-name'])(
    'system property %s is one name, hyphens included',
    (name) => {
      const expr = ast(`${name} = 'x'`);
      expect(expr.kind === 'binary' && expr.left.kind === 'reference' && expr.left.root).toBe('system');
      expect(canonical(`${name} = 'x'`)).toBe(`${name} = 'x'`);
    },
  );
});

describe('literals (IoT Hub query language, "Expressions and conditions")', () => {
  it('"level=\\"critical\\"": strings take single or double quotes', () => {
    expect(shape(ast('level="critical"'))).toEqual(shape(ast("level='critical'")));
  });

  it('allows the escapes \\\' \\" \\\\ and \\uXXXX, nothing else', () => {
    const expr = ast(String.raw`a = 'it\'s \"q\" \\ \u00e9'`);
    expect(expr.kind === 'binary' && expr.right.kind === 'literal' && expr.right.value).toBe(`it's "q" \\ é`);
    expect(error(String.raw`a = 'line\n'`).message).toBe(String.raw`invalid escape '\n' in string at 9 (allowed escapes: \' \" \\ \uXXXX)`);
  });

  it('reads decimal, exponent and hexadecimal numbers', () => {
    const value = (text: string) => {
      const expr = ast(text);
      return expr.kind === 'literal' ? expr.value : undefined;
    };
    expect(value('42')).toBe(42);
    expect(value('4.5')).toBe(4.5);
    expect(value('.5')).toBe(0.5);
    expect(value('1e3')).toBe(1000);
    expect(value('2.5E-1')).toBe(0.25);
    expect(value('0x1F')).toBe(31);
    expect(value('-7')).toBe(-7);
  });

  it('true, false, null and undefined are constants in any case', () => {
    for (const [text, value] of [['TRUE', true], ['False', false], ['null', null], ['Undefined', undefined]] as const) {
      const expr = ast(text);
      expect(expr.kind).toBe('literal');
      expect(expr.kind === 'literal' && expr.value).toBe(value);
    }
  });

  it('array constants', () => {
    expect(canonical("[1, 'a', [true]] = $body.x")).toBe("[1, 'a', [true]] = $body.x");
    expect(error('[a] = $body.x').message).toBe("unexpected token 'a' at 1 (expected a constant)");
  });
});

describe('operators and precedence', () => {
  it('AND binds tighter than OR', () => {
    expect(canonical('a = 1 OR b = 2 AND c = 3')).toBe('a = 1 OR b = 2 AND c = 3');
    const expr = ast('a = 1 OR b = 2 AND c = 3');
    expect(expr.kind === 'binary' && expr.op).toBe('OR');
    expect(canonical('(a = 1 OR b = 2) AND c = 3')).toBe('(a = 1 OR b = 2) AND c = 3');
  });

  it('NOT binds tighter than AND but looser than comparisons', () => {
    const expr = ast("NOT a = 'x' AND b");
    expect(shape(expr)).toEqual({
      kind: 'binary',
      op: 'AND',
      left: {
        kind: 'unary',
        op: 'NOT',
        operand: { kind: 'binary', op: '=', left: { kind: 'reference', root: 'app', segments: [{ key: 'a' }] }, right: { kind: 'literal', value: 'x' } },
      },
      right: { kind: 'reference', root: 'app', segments: [{ key: 'b' }] },
    });
  });

  it('"NOT IS_DEFINED($body.x)" negates the call', () => {
    expect(shape(ast('NOT IS_DEFINED($body.x)'))).toEqual({
      kind: 'unary',
      op: 'NOT',
      operand: { kind: 'call', name: 'IS_DEFINED', args: [{ kind: 'reference', root: 'body', segments: [{ key: 'x' }] }] },
    });
  });

  it('* / % bind tighter than + -, which bind tighter than comparisons', () => {
    const expr = ast('1 + 2 * 3 > 6 % 4 - 1');
    expect(printRouteQuery(expr)).toBe('1 + 2 * 3 > 6 % 4 - 1');
    expect(expr.kind === 'binary' && expr.op).toBe('>');
    expect(canonical('(1 + 2) * 3 = 9')).toBe('(1 + 2) * 3 = 9');
    expect(canonical('10 - (4 - 3) = 9')).toBe('10 - (4 - 3) = 9');
    expect(canonical('10 - 4 - 3 = 3')).toBe('10 - 4 - 3 = 3');
  });

  it('accepts every documented comparison operator: = != <> < <= > >=', () => {
    for (const op of ['=', '!=', '<>', '<', '<=', '>', '>=']) {
      const expr = ast(`a ${op} 'x'`);
      expect(expr.kind === 'binary' && expr.op).toBe(op);
    }
  });

  it('keywords and function names ignore case', () => {
    expect(canonical("a = 'x' and not b or c")).toBe("a = 'x' AND NOT b OR c");
    expect(canonical("starts_with(a, 'x')")).toBe("STARTS_WITH(a, 'x')");
  });

  it('a hyphen between letters is part of a name; elsewhere it is a minus', () => {
    expect(shape(ast('device-type'))).toEqual({ kind: 'reference', root: 'app', segments: [{ key: 'device-type' }] });
    expect(canonical('temperature-5 > 3')).toBe('temperature - 5 > 3');
    expect(canonical('a - b')).toBe('a - b');
    expect(canonical('-a')).toBe('-a');
  });

  it('parses every documented routing function with its arity', () => {
    for (const name of FUNCTION_NAMES) {
      const [min] = FUNCTIONS[name];
      const args = Array.from({ length: min }, (_, i) => `a${i}`).join(', ');
      expect(canonical(`${name.toLowerCase()}(${args})`)).toBe(`${name}(${args})`);
    }
  });

  it('$twin.properties.desired.$version: $ may start a path segment', () => {
    expect(shape(ast('$twin.properties.desired.$version > 1'))).toMatchObject({
      left: { root: 'twin', segments: [{ key: 'properties' }, { key: 'desired' }, { key: '$version' }] },
    });
  });
});

describe('syntax errors carry the offset', () => {
  const cases: Array<[string, string, number]> = [
    ["a = 'x')", "unexpected token ')' at 7", 7],
    ["(a = 'x'", "unexpected end of condition at 8 (expected ')' to close the '(' at 0)", 8],
    ['a = ', 'unexpected end of condition at 4 (expected a value, a property or a function call)', 4],
    ["level = 'critical", 'unterminated string starting at 8', 8],
    ['a == 1', "unexpected token '==' at 2 (use '=' for equality)", 2],
    ['a = 1 && b = 2', "unexpected character '&' at 6 (use AND)", 6],
    ['a = 1 || b = 2', "unexpected character '|' at 6 (use OR)", 6],
    ['!a', "unexpected character '!' at 0 (use NOT for negation or != for inequality)", 0],
    ['a = 1 AND', 'unexpected end of condition at 9 (expected a value, a property or a function call)', 9],
    ['AND a', 'unexpected keyword AND at 0 (expected a value, a property or a function call)', 0],
    ['foo(1) = 2', 'unknown function foo at 0', 0],
    ['LENGTH() = 0', 'LENGTH takes 1 argument, got 0 at 0', 0],
    ["x = SUBSTRING('a')", 'SUBSTRING takes 2 to 3 arguments, got 1 at 4', 4],
    ["CONCAT('a') = 'a'", 'CONCAT takes at least 2 arguments, got 1 at 0', 0],
    ['', 'empty condition at 0 (write true to route every message)', 0],
    ['   ', 'empty condition at 0 (write true to route every message)', 0],
    ['a = 12abc', "invalid number '12abc' at 4", 4],
    ['a = 1e999', "number '1e999' is out of range at 4", 4],
    ['a @ b', "unexpected character '@' at 2", 2],
    ['$ = 1', "'$' must be followed by a property name at 0", 0],
    ['a. = 1', "expected a property name after '.' at 2", 2],
    ["$body.a['b'] = 1", "unexpected '[' after '$body.a' at 7 (only array indexes such as [0] may follow a name)", 7],
    ['a b', "unexpected token 'b' at 2", 2],
    ['STARTS_WITH(a, 1', "unexpected end of condition at 16 (expected ',' or ')' in the call to STARTS_WITH)", 16],
  ];
  it.each(cases)('%j → %s', (text, message, position) => {
    const e = error(text);
    expect(e.message).toBe(message);
    expect(e.position).toBe(position);
  });

  it('reports line and column for multi-line conditions', () => {
    const e = error("level = 'critical'\n  AND )");
    expect(e).toEqual({ message: "unexpected token ')' at 25 (expected a value, a property or a function call)", position: 25, line: 2, column: 7 });
  });

  it('rejects nesting deeper than MAX_NESTING instead of overflowing the stack', () => {
    const deep = `${'('.repeat(MAX_NESTING + 1)}a${')'.repeat(MAX_NESTING + 1)}`;
    expect(error(deep).message).toMatch(/nested more than 200 levels deep at \d+/);
    expect(parseRouteQuery(`${'NOT '.repeat(5000)}a`)).toHaveProperty('error');
    const fine = `${'('.repeat(50)}a${')'.repeat(50)}`;
    expect(parseRouteQuery(fine)).toHaveProperty('ast');
  });

  it('whitespace may not split a path (property names cannot contain whitespace)', () => {
    expect(error('$body. a = 1').message).toBe("expected a property name after '.' at 6");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties

const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_';
const KEYWORDS = new Set(['and', 'or', 'not', 'true', 'false', 'null', 'undefined', 'body', 'twin']);

const nameArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...letters),
    fc.string({ unit: fc.constantFrom(...`${letters}0123456789`), maxLength: 6 }),
    fc.option(fc.tuple(fc.constantFrom(...letters), fc.string({ unit: fc.constantFrom(...letters), maxLength: 3 })), { nil: undefined }),
  )
  .map(([first, rest, hyphen]) => (hyphen === undefined ? `${first}${rest}` : `${first}${rest}-${hyphen[0]}${hyphen[1]}`))
  .filter((name) => !KEYWORDS.has(name.toLowerCase()));

const segmentArb: fc.Arbitrary<PathSegment> = fc.oneof(
  { weight: 3, arbitrary: nameArb.map((key) => ({ key })) },
  { weight: 1, arbitrary: fc.nat({ max: 20 }).map((index) => ({ index })) },
);

const keysArb = fc.array(nameArb.map((key) => ({ key }) as PathSegment), { minLength: 1, maxLength: 3 });

const referenceArb: fc.Arbitrary<Expr> = fc.oneof(
  keysArb.map((segments) => ({ kind: 'reference' as const, root: 'app' as const, segments, position: 0, end: 0 })),
  keysArb.map((segments) => ({ kind: 'reference' as const, root: 'system' as const, segments, position: 0, end: 0 })),
  fc
    .tuple(nameArb, fc.array(segmentArb, { maxLength: 4 }))
    .map(([first, rest]) => ({ kind: 'reference' as const, root: 'body' as const, segments: [{ key: first }, ...rest], position: 0, end: 0 })),
  fc
    .array(segmentArb, { maxLength: 4 })
    .map((segments) => ({ kind: 'reference' as const, root: 'twin' as const, segments: [{ key: 'tags' }, ...segments], position: 0, end: 0 })),
);

const literalArb: fc.Arbitrary<Expr> = fc
  .oneof(
    fc.string({ maxLength: 8 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
  )
  .map((value) => ({ kind: 'literal' as const, value, position: 0, end: 0 }));

const constantArb: fc.Arbitrary<Expr> = fc.letrec<{ constant: Expr }>((tie) => ({
  constant: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literalArb,
    fc.array(tie('constant'), { maxLength: 3 }).map((items) => ({ kind: 'array' as const, items, position: 0, end: 0 })),
  ),
})).constant;

const binaryOps = ['=', '!=', '<>', '<', '<=', '>', '>=', '+', '-', '*', '/', '%', 'AND', 'OR'] as const;

const exprArb: fc.Arbitrary<Expr> = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literalArb,
    referenceArb,
    constantArb,
    fc
      .tuple(fc.constantFrom('NOT', '-', '+'), tie('expr'))
      .map(([op, operand]) => ({ kind: 'unary' as const, op, operand, position: 0, end: 0 })),
    fc
      .tuple(fc.constantFrom(...binaryOps), tie('expr'), tie('expr'))
      .map(([op, left, right]) => ({ kind: 'binary' as const, op, left, right, position: 0, end: 0 })),
    fc
      .tuple(fc.constantFrom(...FUNCTION_NAMES), fc.array(tie('expr'), { minLength: 3, maxLength: 3 }))
      .map(([name, pool]: [FunctionName, Expr[]]) => {
        const [min, max] = FUNCTIONS[name];
        const count = Math.min(Math.max(min, 2), max);
        return { kind: 'call' as const, name, args: pool.slice(0, count), position: 0, end: 0 };
      }),
  ),
})).expr;

describe('properties', () => {
  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        const result = parseRouteQuery(text);
        if ('error' in result) {
          expect(result.error.position).toBeGreaterThanOrEqual(0);
          expect(result.error.position).toBeLessThanOrEqual(text.length);
          expect(result.error.message).toContain(` at ${result.error.position}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on text made of the language\'s own characters', () => {
    const unit = fc.constantFrom(...'ab$.[]0123()\'"\\ -+*/%=<>!,NOTANDORtruex_'.split(''));
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 60 }), (text) => {
        expect(() => parseRouteQuery(text)).not.toThrow();
      }),
      { numRuns: 3000 },
    );
  });

  it('printing then parsing gives back the same AST', () => {
    fc.assert(
      fc.property(exprArb, (expr) => {
        const printed = printRouteQuery(expr);
        const reparsed = parseRouteQuery(printed);
        if ('error' in reparsed) throw new Error(`${printed}: ${reparsed.error.message}`);
        expect(shape(reparsed.ast)).toEqual(shape(expr));
      }),
      { numRuns: 1500 },
    );
  });

  it('a parsed condition prints to a fixed point', () => {
    fc.assert(
      fc.property(exprArb, (expr) => {
        const once = printRouteQuery(ast(printRouteQuery(expr)));
        expect(printRouteQuery(ast(once))).toBe(once);
      }),
      { numRuns: 500 },
    );
  });

  it('node spans lie inside the text', () => {
    fc.assert(
      fc.property(exprArb, (expr) => {
        const text = printRouteQuery(expr);
        const check = (node: Expr): void => {
          expect(node.position).toBeGreaterThanOrEqual(0);
          expect(node.end).toBeLessThanOrEqual(text.length);
          expect(node.position).toBeLessThan(node.end);
          if (node.kind === 'binary') [node.left, node.right].forEach(check);
          if (node.kind === 'unary') check(node.operand);
          if (node.kind === 'call') node.args.forEach(check);
          if (node.kind === 'array') node.items.forEach(check);
        };
        check(ast(text));
      }),
      { numRuns: 300 },
    );
  });
});
