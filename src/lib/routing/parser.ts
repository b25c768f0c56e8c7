/**
 * IoT Hub's message routing query language: lexer, recursive-descent parser and printer.
 *
 * Sources (decisions recorded in docs/adr/0003-routing-query-language.md):
 * - [routing] learn.microsoft.com/azure/iot-hub/iot-hub-devguide-routing-query-syntax
 * - [language] learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language, "Expressions and conditions"
 * - [cosmos] learn.microsoft.com/azure/cosmos-db/nosql/query/logical-operators (precedence NOT > AND > OR), the SQL
 *   dialect IoT Hub's language follows.
 *
 * Expected bad input is a value: {@link parseRouteQuery} never throws, it returns `{ error }` with the offset.
 */

// ---------------------------------------------------------------------------------------------------------------
// AST

/** Where a node starts and ends in the query text, as 0-based UTF-16 offsets (`end` exclusive). */
export interface Span {
  position: number;
  end: number;
}

export type LiteralValue = null | boolean | number | string | undefined;

export interface LiteralExpr extends Span {
  kind: 'literal';
  value: LiteralValue;
}

/** `[1, 'a']`: [language] allows array constants. */
export interface ArrayExpr extends Span {
  kind: 'array';
  items: Expr[];
}

export type PathSegment = { key: string } | { index: number };

/**
 * - `app`: an application property by bare name (`processingPath`).
 * - `system`: a `$`-prefixed name other than `$body` / `$twin` (`$contentType`, `$connectionDeviceId`).
 * - `body`: `$body.Weather.HistoricalData[0].Month`.
 * - `twin`: `$twin.tags.deploymentLocation.floor`, `$twin.properties.desired.x`.
 *
 * `segments` hold what follows the root for `body` and `twin`; for `app` and `system` the first segment is the name
 * itself (without `$`), so `a.b` is `[{key:'a'},{key:'b'}]`.
 */
export interface ReferenceExpr extends Span {
  kind: 'reference';
  root: 'app' | 'system' | 'body' | 'twin';
  segments: PathSegment[];
}

export type UnaryOp = 'NOT' | '-' | '+';
export type ComparisonOp = '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=';
export type ArithmeticOp = '+' | '-' | '*' | '/' | '%';
export type LogicalOp = 'AND' | 'OR';
export type BinaryOp = ComparisonOp | ArithmeticOp | LogicalOp;

export interface UnaryExpr extends Span {
  kind: 'unary';
  op: UnaryOp;
  operand: Expr;
}

export interface BinaryExpr extends Span {
  kind: 'binary';
  op: BinaryOp;
  left: Expr;
  right: Expr;
}

export interface CallExpr extends Span {
  kind: 'call';
  name: FunctionName;
  args: Expr[];
}

export type Expr = LiteralExpr | ArrayExpr | ReferenceExpr | UnaryExpr | BinaryExpr | CallExpr;

/**
 * The functions [language] lists for route conditions (math, type checking and casting, string), each with the
 * number of arguments it takes. Arity is checked when parsing so that `check-routes` reports a wrong call before a
 * message ever meets it.
 */
export const FUNCTIONS = {
  ABS: [1, 1],
  EXP: [1, 1],
  POWER: [2, 2],
  SQUARE: [1, 1],
  CEILING: [1, 1],
  FLOOR: [1, 1],
  SIGN: [1, 1],
  SQRT: [1, 1],
  AS_NUMBER: [1, 1],
  IS_ARRAY: [1, 1],
  IS_BOOL: [1, 1],
  IS_DEFINED: [1, 1],
  IS_NULL: [1, 1],
  IS_NUMBER: [1, 1],
  IS_OBJECT: [1, 1],
  IS_PRIMITIVE: [1, 1],
  IS_STRING: [1, 1],
  // "concatenating two or more string values" [language].
  CONCAT: [2, Number.POSITIVE_INFINITY],
  LENGTH: [1, 1],
  LOWER: [1, 1],
  UPPER: [1, 1],
  SUBSTRING: [2, 3],
  INDEX_OF: [2, 2],
  STARTS_WITH: [2, 2],
  ENDS_WITH: [2, 2],
  CONTAINS: [2, 2],
} as const satisfies Record<string, readonly [number, number]>;

export type FunctionName = keyof typeof FUNCTIONS;

export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as readonly FunctionName[];

function isFunctionName(name: string): name is FunctionName {
  return Object.hasOwn(FUNCTIONS, name);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

export interface ParseError {
  /** Human-readable, ending with the offset: "unexpected token ')' at 14". */
  message: string;
  /** 0-based offset into the query text (as in `JSON.parse` messages). */
  position: number;
  /** 1-based line and column of `position`, for multi-line conditions in an editor. */
  line: number;
  column: number;
}

export type ParseResult = { ast: Expr } | { error: ParseError };

/** Internal control flow only; {@link parseRouteQuery} turns it into a value. */
class ParseFailure {
  constructor(
    readonly detail: string,
    readonly position: number,
    /** Said after the position: what was expected, or how to fix it. */
    readonly hint?: string,
  ) {}
}

// ---------------------------------------------------------------------------------------------------------------
// Lexer

type TokenType =
  | 'number'
  | 'string'
  | 'reference'
  | 'word'
  | 'op'
  | '('
  | ')'
  | '['
  | ']'
  | ','
  | 'eof';

interface Token {
  type: TokenType;
  /** The source text of the token. */
  text: string;
  position: number;
  end: number;
  /** Decoded value of a number or string token. */
  value?: number | string;
  /** Path segments of a reference or word token. */
  segments?: PathSegment[];
  /** For references: which root the first segment named. */
  root?: ReferenceExpr['root'];
}

/*
 * Name characters. [routing] "Limitations": property names, body paths and twin paths cannot hold whitespace or any
 * of ()<>@,;:\"/?={} — so everything else that is not an operator may appear, notably '-' (`$dt-subject`,
 * `$iothub-enqueuedtime`) and '$' (`$twin.properties.desired.$version`).
 */
function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f /* _ */ || (c >= 0x80 && !isSpace(c));
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isNamePart(c: number): boolean {
  return isNameStart(c) || isDigit(c) || c === 0x24; /* $ */
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029;
}

const HEX = /^[0-9a-fA-F]{4}$/;

class Lexer {
  #pos = 0;

  constructor(readonly text: string) {}

  next(): Token {
    const text = this.text;
    while (this.#pos < text.length && isSpace(text.charCodeAt(this.#pos))) this.#pos++;
    const start = this.#pos;
    if (start >= text.length) return { type: 'eof', text: '', position: start, end: start };
    const c = text.charCodeAt(start);
    const ch = text[start]!;

    if (c === 0x27 || c === 0x22) return this.#string(start, ch);
    if (isDigit(c) || (c === 0x2e && isDigit(text.charCodeAt(start + 1)))) return this.#number(start);
    if (c === 0x24 /* $ */ || isNameStart(c)) return this.#name(start);

    this.#pos++;
    switch (ch) {
      case '(':
      case ')':
      case '[':
      case ']':
      case ',':
        return { type: ch, text: ch, position: start, end: this.#pos };
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.#op(start);
      case '=':
        if (text[this.#pos] === '=') {
          throw new ParseFailure(`unexpected token '=='`, start, `use '=' for equality`);
        }
        return this.#op(start);
      case '<':
        if (text[this.#pos] === '=' || text[this.#pos] === '>') this.#pos++;
        return this.#op(start);
      case '>':
        if (text[this.#pos] === '=') this.#pos++;
        return this.#op(start);
      case '!':
        if (text[this.#pos] === '=') {
          this.#pos++;
          return this.#op(start);
        }
        throw new ParseFailure(`unexpected character '!'`, start, 'use NOT for negation or != for inequality');
      case '&':
        throw new ParseFailure(`unexpected character '&'`, start, 'use AND');
      case '|':
        throw new ParseFailure(`unexpected character '|'`, start, 'use OR');
      default:
        throw new ParseFailure(`unexpected character ${quoteChar(text.codePointAt(start)!)}`, start);
    }
  }

  #op(start: number): Token {
    return { type: 'op', text: this.text.slice(start, this.#pos), position: start, end: this.#pos };
  }

  /** [language]: single or double quotes; escapes \' \" \\ and \uXXXX only. */
  #string(start: number, quote: string): Token {
    const text = this.text;
    let i = start + 1;
    let value = '';
    let chunk = i;
    for (;;) {
      if (i >= text.length) throw new ParseFailure(`unterminated string starting`, start);
      const ch = text[i]!;
      if (ch === quote) {
        value += text.slice(chunk, i);
        i++;
        break;
      }
      if (ch !== '\\') {
        i++;
        continue;
      }
      value += text.slice(chunk, i);
      const esc = text[i + 1];
      if (esc === "'" || esc === '"' || esc === '\\') {
        value += esc;
        i += 2;
      } else if (esc === 'u' && HEX.test(text.slice(i + 2, i + 6))) {
        value += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else {
        throw new ParseFailure(
          esc === undefined
            ? `unterminated string (it ends with a backslash) starting`
            : `invalid escape '\\${esc}' in string`,
          esc === undefined ? start : i,
          esc === undefined ? undefined : `allowed escapes: \\' \\" \\\\ \\uXXXX`,
        );
      }
      chunk = i;
    }
    this.#pos = i;
    return { type: 'string', text: text.slice(start, i), position: start, end: i, value };
  }

  /** [language]: decimal_literal (a float in decimal notation) or hexadecimal_literal (`0x` + hex digits). */
  #number(start: number): Token {
    const text = this.text;
    const rest = text.slice(start);
    const match = /^(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)/.exec(rest);
    // The regex always matches here because the caller saw a digit or '.digit'.
    const raw = match?.[0] ?? rest.slice(0, 1);
    let i = start + raw.length;
    if (i < text.length && isNamePart(text.charCodeAt(i))) {
      while (i < text.length && (isNamePart(text.charCodeAt(i)) || text[i] === '.')) i++;
      throw new ParseFailure(`invalid number '${text.slice(start, i)}'`, start);
    }
    const value = /^0[xX]/.test(raw) ? Number.parseInt(raw.slice(2), 16) : Number(raw);
    if (!Number.isFinite(value)) throw new ParseFailure(`number '${raw}' is out of range`, start);
    this.#pos = i;
    return { type: 'number', text: raw, position: start, end: i, value };
  }

  /**
   * A name with its whole path, read as one token: `a`, `$contentType`, `$body.Weather.HistoricalData[0].Month`.
   * Whitespace is not allowed inside a path [routing, Limitations], so `a . b` is not `a.b`.
   *
   * '-' is part of a name only when a letter, '_' or '$' follows it: `$dt-subject` and `device-type` are names,
   * while `temperature-5` and `a - b` are subtractions (there is no other way to tell `a-b` apart; write spaces
   * around a binary minus).
   */
  #name(start: number): Token {
    const text = this.text;
    const segments: PathSegment[] = [];
    let i = start;
    let dollar = false;
    if (text[i] === '$') {
      dollar = true;
      i++;
    }
    const readName = (from: number): number => {
      let j = from;
      for (;;) {
        while (j < text.length && isNamePart(text.charCodeAt(j))) j++;
        if (text[j] === '-' && j > from && (isNameStart(text.charCodeAt(j + 1)) || text[j + 1] === '$')) {
          j++;
          continue;
        }
        return j;
      }
    };
    const firstEnd = readName(i);
    if (firstEnd === i) throw new ParseFailure(`'$' must be followed by a property name`, start);
    segments.push({ key: text.slice(i, firstEnd) });
    i = firstEnd;
    for (;;) {
      if (text[i] === '.') {
        const segEnd = readName(i + 1);
        if (segEnd === i + 1) {
          throw new ParseFailure(`expected a property name after '.'`, i + 1 < text.length ? i + 1 : i);
        }
        segments.push({ key: text.slice(i + 1, segEnd) });
        i = segEnd;
      } else if (text[i] === '[') {
        // [routing] documents array indexes in body paths (`HistoricalData[0]`); names in brackets are not.
        const close = /^\[(\d+)\]/.exec(text.slice(i, i + 24));
        if (!close) {
          throw new ParseFailure(`unexpected '[' after '${text.slice(start, i)}'`, i, 'only array indexes such as [0] may follow a name');
        }
        const index = Number(close[1]);
        if (!Number.isSafeInteger(index)) throw new ParseFailure(`array index ${close[1]} is out of range`, i);
        segments.push({ index });
        i += close[0].length;
      } else {
        break;
      }
    }
    this.#pos = i;
    const token: Token = { type: dollar ? 'reference' : 'word', text: text.slice(start, i), position: start, end: i, segments };
    if (dollar) {
      const first = (segments[0] as { key: string }).key.toLowerCase();
      token.root = first === 'body' ? 'body' : first === 'twin' ? 'twin' : 'system';
    }
    return token;
  }
}

function quoteChar(codePoint: number): string {
  const ch = String.fromCodePoint(codePoint);
  return codePoint < 0x20 || codePoint === 0x7f
    ? `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`
    : `'${ch}'`;
}

// ---------------------------------------------------------------------------------------------------------------
// Parser

/** Deep nesting would overflow the stack of a recursive-descent parser; no real condition comes near this. */
export const MAX_NESTING = 200;

const COMPARISON_OPS: ReadonlySet<string> = new Set(['=', '!=', '<>', '<', '<=', '>', '>=']);

class Parser {
  #lexer: Lexer;
  #token: Token;
  #depth = 0;

  constructor(text: string) {
    this.#lexer = new Lexer(text);
    this.#token = this.#lexer.next();
  }

  parseQuery(): Expr {
    if (this.#token.type === 'eof') {
      throw new ParseFailure('empty condition', 0, 'write true to route every message');
    }
    const expr = this.#or();
    if (this.#current().type !== 'eof') throw this.#unexpected();
    return expr;
  }

  /** Read through a method so that TypeScript does not carry narrowing of `#token` across calls that move it. */
  #current(): Token {
    return this.#token;
  }

  #advance(): Token {
    const token = this.#token;
    this.#token = this.#lexer.next();
    return token;
  }

  #keyword(): string | undefined {
    const t = this.#token;
    if (t.type !== 'word' || t.segments?.length !== 1) return undefined;
    return t.text.toUpperCase();
  }

  #unexpected(expected?: string): ParseFailure {
    const t = this.#token;
    const hint = expected === undefined ? undefined : `expected ${expected}`;
    if (t.type === 'eof') return new ParseFailure('unexpected end of condition', t.position, hint);
    return new ParseFailure(`unexpected token '${t.text}'`, t.position, hint);
  }

  #enter(position: number): void {
    if (++this.#depth > MAX_NESTING) {
      throw new ParseFailure(`condition is nested more than ${MAX_NESTING} levels deep`, position);
    }
  }

  // [cosmos] precedence: NOT binds tighter than AND, AND tighter than OR.
  #or(): Expr {
    let left = this.#and();
    while (this.#keyword() === 'OR') {
      this.#advance();
      const right = this.#and();
      left = { kind: 'binary', op: 'OR', left, right, position: left.position, end: right.end };
    }
    return left;
  }

  #and(): Expr {
    let left = this.#not();
    while (this.#keyword() === 'AND') {
      this.#advance();
      const right = this.#not();
      left = { kind: 'binary', op: 'AND', left, right, position: left.position, end: right.end };
    }
    return left;
  }

  /** As in SQL, NOT applies to a whole comparison: `NOT a = b` is `NOT (a = b)`. */
  #not(): Expr {
    if (this.#keyword() === 'NOT') {
      const start = this.#advance().position;
      this.#enter(start);
      const operand = this.#not();
      this.#depth--;
      return { kind: 'unary', op: 'NOT', operand, position: start, end: operand.end };
    }
    return this.#comparison();
  }

  #comparison(): Expr {
    let left = this.#additive();
    while (this.#token.type === 'op' && COMPARISON_OPS.has(this.#token.text)) {
      const op = this.#advance().text as ComparisonOp;
      const right = this.#additive();
      left = { kind: 'binary', op, left, right, position: left.position, end: right.end };
    }
    return left;
  }

  #additive(): Expr {
    let left = this.#multiplicative();
    while (this.#token.type === 'op' && (this.#token.text === '+' || this.#token.text === '-')) {
      const op = this.#advance().text as ArithmeticOp;
      const right = this.#multiplicative();
      left = { kind: 'binary', op, left, right, position: left.position, end: right.end };
    }
    return left;
  }

  #multiplicative(): Expr {
    let left = this.#unary();
    while (this.#token.type === 'op' && (this.#token.text === '*' || this.#token.text === '/' || this.#token.text === '%')) {
      const op = this.#advance().text as ArithmeticOp;
      const right = this.#unary();
      left = { kind: 'binary', op, left, right, position: left.position, end: right.end };
    }
    return left;
  }

  #unary(): Expr {
    const t = this.#token;
    if (t.type === 'op' && (t.text === '-' || t.text === '+')) {
      this.#advance();
      // `-5` is the number -5, not an operation on 5: the printer relies on this to round-trip negative constants.
      if (this.#token.type === 'number') {
        const n = this.#advance();
        const value = t.text === '-' ? -(n.value as number) : (n.value as number);
        return { kind: 'literal', value, position: t.position, end: n.end };
      }
      this.#enter(t.position);
      const operand = this.#unary();
      this.#depth--;
      return { kind: 'unary', op: t.text as '-' | '+', operand, position: t.position, end: operand.end };
    }
    return this.#primary();
  }

  #primary(): Expr {
    const t = this.#token;
    switch (t.type) {
      case 'number':
      case 'string':
        this.#advance();
        return { kind: 'literal', value: t.value as number | string, position: t.position, end: t.end };
      case '(': {
        this.#advance();
        this.#enter(t.position);
        const inner = this.#or();
        this.#depth--;
        if (this.#token.type !== ')') throw this.#unexpected(`')' to close the '(' at ${t.position}`);
        this.#advance();
        return inner;
      }
      case '[':
        return this.#array();
      case 'reference':
        this.#advance();
        return { kind: 'reference', root: t.root!, segments: rootSegments(t), position: t.position, end: t.end };
      case 'word':
        return this.#word();
      default:
        throw this.#unexpected('a value, a property or a function call');
    }
  }

  #word(): Expr {
    const t = this.#advance();
    const single = t.segments!.length === 1;
    const upper = t.text.toUpperCase();
    if (single && this.#token.type === '(') return this.#call(t, upper);
    if (single) {
      switch (upper) {
        case 'TRUE':
          return { kind: 'literal', value: true, position: t.position, end: t.end };
        case 'FALSE':
          return { kind: 'literal', value: false, position: t.position, end: t.end };
        case 'NULL':
          return { kind: 'literal', value: null, position: t.position, end: t.end };
        case 'UNDEFINED':
          return { kind: 'literal', value: undefined, position: t.position, end: t.end };
        case 'AND':
        case 'OR':
        case 'NOT':
          throw new ParseFailure(`unexpected keyword ${upper}`, t.position, 'expected a value, a property or a function call');
      }
    }
    return { kind: 'reference', root: 'app', segments: t.segments!, position: t.position, end: t.end };
  }

  #call(nameToken: Token, upper: string): Expr {
    if (!isFunctionName(upper)) {
      throw new ParseFailure(`unknown function ${nameToken.text}`, nameToken.position);
    }
    const open = this.#advance();
    this.#enter(open.position);
    const args: Expr[] = [];
    if (this.#token.type !== ')') {
      for (;;) {
        args.push(this.#or());
        if (this.#token.type === ',') {
          this.#advance();
          continue;
        }
        break;
      }
    }
    if (this.#token.type !== ')') throw this.#unexpected(`',' or ')' in the call to ${upper}`);
    const close = this.#advance();
    this.#depth--;
    const [min, max] = FUNCTIONS[upper];
    if (args.length < min || args.length > max) {
      const wanted = min === max ? `${min}` : max === Number.POSITIVE_INFINITY ? `at least ${min}` : `${min} to ${max}`;
      throw new ParseFailure(
        `${upper} takes ${wanted} argument${wanted === '1' ? '' : 's'}, got ${args.length}`,
        nameToken.position,
      );
    }
    return { kind: 'call', name: upper, args, position: nameToken.position, end: close.end };
  }

  /** [language]: `<array_constant> ::= '[' <constant> [, <constant>]+ ']'`. */
  #array(): Expr {
    const open = this.#advance();
    this.#enter(open.position);
    const items: Expr[] = [];
    if (this.#token.type !== ']') {
      for (;;) {
        items.push(this.#constant());
        if (this.#token.type === ',') {
          this.#advance();
          continue;
        }
        break;
      }
    }
    if (this.#token.type !== ']') throw this.#unexpected(`',' or ']' in the array starting at ${open.position}`);
    const close = this.#advance();
    this.#depth--;
    return { kind: 'array', items, position: open.position, end: close.end };
  }

  #constant(): Expr {
    const t = this.#token;
    if (t.type === '[') return this.#array();
    if (t.type === 'number' || t.type === 'string' || (t.type === 'op' && (t.text === '-' || t.text === '+'))) {
      const expr = this.#unary();
      if (expr.kind === 'literal') return expr;
      throw new ParseFailure('array elements must be constants', t.position);
    }
    if (t.type === 'word' && t.segments?.length === 1) {
      const upper = t.text.toUpperCase();
      if (upper === 'TRUE' || upper === 'FALSE' || upper === 'NULL' || upper === 'UNDEFINED') return this.#word();
    }
    throw this.#unexpected('a constant');
  }
}

/** `$body.a` → `[a]`; `$contentType` → `[contentType]`. */
function rootSegments(t: Token): PathSegment[] {
  const segments = t.segments!;
  return t.root === 'body' || t.root === 'twin' ? segments.slice(1) : segments;
}

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: position - lineStart + 1 };
}

/**
 * Parses a route condition. Never throws: a syntax error comes back as `{ error }` whose message ends with the
 * 0-based offset ("unexpected token ')' at 14"), because IoT Hub refuses to save a route whose query does not
 * parse [routing] and the person fixing it needs to find the spot.
 */
export function parseRouteQuery(text: string): ParseResult {
  try {
    return { ast: new Parser(text).parseQuery() };
  } catch (failure) {
    if (failure instanceof ParseFailure) return { error: makeError(text, failure.detail, failure.position, failure.hint) };
    // Only a stack overflow can get here (MAX_NESTING bounds recursion, but the stack size is the host's).
    const detail = failure instanceof RangeError ? 'condition is nested too deeply' : `cannot parse: ${String(failure)}`;
    return { error: makeError(text, detail, 0) };
  }
}

/**
 * Where the condition's string literals are ([start, end), quotes included), read by the lexer the parser uses, up
 * to the first token it refuses: for checks that must tell text a route compares from the names around it.
 */
export function stringLiteralSpans(text: string): Array<{ start: number; end: number }> {
  const lexer = new Lexer(text);
  const spans: Array<{ start: number; end: number }> = [];
  try {
    for (let token = lexer.next(); token.type !== 'eof'; token = lexer.next()) {
      if (token.type === 'string') spans.push({ start: token.position, end: token.end });
    }
  } catch (failure) {
    if (!(failure instanceof ParseFailure)) throw failure;
  }
  return spans;
}

function makeError(text: string, detail: string, position: number, hint?: string): ParseError {
  const message = `${detail} at ${position}${hint === undefined ? '' : ` (${hint})`}`;
  return { message, position, ...lineAndColumn(text, position) };
}

// ---------------------------------------------------------------------------------------------------------------
// Printer

const PRECEDENCE = {
  OR: 1,
  AND: 2,
  NOT: 3,
  '=': 4,
  '!=': 4,
  '<>': 4,
  '<': 4,
  '<=': 4,
  '>': 4,
  '>=': 4,
  '+': 5,
  '-': 5,
  '*': 6,
  '/': 6,
  '%': 6,
} as const satisfies Record<BinaryOp | 'NOT', number>;

const UNARY_PRECEDENCE = 7;
const PRIMARY_PRECEDENCE = 8;

function precedenceOf(expr: Expr): number {
  switch (expr.kind) {
    case 'binary':
      return PRECEDENCE[expr.op];
    case 'unary':
      return expr.op === 'NOT' ? PRECEDENCE.NOT : UNARY_PRECEDENCE;
    case 'literal':
      // A negative number prints with its sign, which binds like a unary minus.
      return typeof expr.value === 'number' && (expr.value < 0 || Object.is(expr.value, -0))
        ? UNARY_PRECEDENCE
        : PRIMARY_PRECEDENCE;
    default:
      return PRIMARY_PRECEDENCE;
  }
}

function printString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

function printNumber(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

function printSegments(segments: readonly PathSegment[], first: boolean): string {
  let out = '';
  segments.forEach((segment, i) => {
    if ('index' in segment) out += `[${segment.index}]`;
    else out += first && i === 0 ? segment.key : `.${segment.key}`;
  });
  return out;
}

/**
 * Prints an AST as a condition that parses back to the same AST (positions aside): canonical spelling (upper-case
 * keywords and function names, single-quoted strings, spaces around binary operators so that `a - b` never reads
 * as the name `a-b`) and only the parentheses precedence needs.
 */
export function printRouteQuery(expr: Expr): string {
  switch (expr.kind) {
    case 'literal': {
      const v = expr.value;
      if (v === undefined) return 'undefined';
      if (v === null) return 'null';
      if (typeof v === 'boolean') return v ? 'true' : 'false';
      if (typeof v === 'number') return printNumber(v);
      return printString(v);
    }
    case 'array':
      return `[${expr.items.map(printRouteQuery).join(', ')}]`;
    case 'reference':
      switch (expr.root) {
        case 'app':
          return printSegments(expr.segments, true);
        case 'system':
          return `$${printSegments(expr.segments, true)}`;
        case 'body':
          return `$body${printSegments(expr.segments, false)}`;
        case 'twin':
          return `$twin${printSegments(expr.segments, false)}`;
      }
      break;
    case 'call':
      return `${expr.name}(${expr.args.map(printRouteQuery).join(', ')})`;
    case 'unary': {
      const operand = expr.operand;
      if (expr.op === 'NOT') {
        const inner = printRouteQuery(operand);
        return precedenceOf(operand) < PRECEDENCE.NOT ? `NOT (${inner})` : `NOT ${inner}`;
      }
      const inner = printRouteQuery(operand);
      // A number right after the sign would parse back as a signed constant rather than this operation, so it is
      // parenthesised, as are operands that bind more loosely than a sign.
      const needsParens =
        operand.kind === 'literal' ? typeof operand.value === 'number' : precedenceOf(operand) < UNARY_PRECEDENCE;
      return needsParens ? `${expr.op}(${inner})` : `${expr.op}${inner}`;
    }
    case 'binary': {
      const p = PRECEDENCE[expr.op];
      const left = printRouteQuery(expr.left);
      const right = printRouteQuery(expr.right);
      const l = precedenceOf(expr.left) < p ? `(${left})` : left;
      const r = precedenceOf(expr.right) <= p ? `(${right})` : right;
      return `${l} ${expr.op} ${r}`;
    }
  }
  return '';
}

// ---------------------------------------------------------------------------------------------------------------
// Walking

/** Every property reference in an expression, in source order. */
export function referencesOf(expr: Expr, into: ReferenceExpr[] = []): ReferenceExpr[] {
  switch (expr.kind) {
    case 'reference':
      into.push(expr);
      break;
    case 'array':
      for (const item of expr.items) referencesOf(item, into);
      break;
    case 'unary':
      referencesOf(expr.operand, into);
      break;
    case 'binary':
      referencesOf(expr.left, into);
      referencesOf(expr.right, into);
      break;
    case 'call':
      for (const arg of expr.args) referencesOf(arg, into);
      break;
    case 'literal':
      break;
  }
  return into;
}

/** The reference as the query spells it, canonicalised (`$body.Weather.Temperature`). */
export function referenceText(ref: ReferenceExpr): string {
  return printRouteQuery(ref);
}
