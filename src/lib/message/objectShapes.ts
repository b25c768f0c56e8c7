/**
 * Plain objects whose keys come from devices: built without prototype surprises, and fast when the same key lists
 * come again and again (every record of a stream, every message of a fleet).
 */

/** Property names are device-chosen: `__proto__` must become an own property, not a prototype change. */
export function setOwnProperty<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/** Objects with more keys than this are built key by key. */
const MAX_SHAPE_KEYS = 64;
/** Distinct key lists given a factory, across all builders; a full table is cleared, which only costs recompiling. */
const MAX_SHAPES = 256;

type ShapeFactory = (values: readonly unknown[]) => Record<string, unknown>;
const factories = new Map<string, ShapeFactory>();

interface Shape {
  keys: readonly string[];
  factory: ShapeFactory;
}

/** Whether the first `count` keys are exactly `known` (callers hand over the same strings: a pointer compare each). */
function sameKeys(keys: readonly string[], known: readonly string[], count: number): boolean {
  if (known.length !== count) return false;
  if (keys === known) return true;
  for (let i = 0; i < count; i++) if (keys[i] !== known[i]) return false;
  return true;
}

/**
 * Builds objects from key and value lists. The objects of one source carry the same few key lists, so each key list
 * that comes a second time gets a factory: a function returning an object literal with those keys, built from V8's
 * literal boilerplate in one step, where assigning the keys one by one goes through a property transition per key
 * (on a store site shared by every key of every object, so megamorphic) and, for numbers, a keyed store that boxes
 * each value on its own. avsc compiles its readers the same way. The literal is generated from JSON.stringify'd
 * keys, each a closed string literal whatever the device wrote; `__proto__`, which a literal would treat as the
 * prototype, and key lists seen once or longer than MAX_SHAPE_KEYS are assigned one by one. Property order and
 * duplicate keys come out as sequential assignment makes them.
 *
 * A builder finds its factories without serialising the keys: the last one used first, then those ending with the
 * same key, compared element by element (callers hand over the same key strings, from string caches or the JSON
 * scan's names, so each comparison is a pointer comparison). Sources that alternate between key lists (a partition
 * carrying several device models) pay a map lookup, not a JSON id; only a list not seen before is serialised.
 */
export class ObjectShapes {
  /** Scratch lists for callers that fill keys and values before `build`; entries past the count are stale. */
  readonly keys: string[] = [];
  readonly values: unknown[] = [];
  #last: Shape | undefined;
  /** This builder's factories by the last key of their list; cleared past MAX_SHAPES, which only costs lookups. */
  readonly #byLastKey = new Map<string, Shape[]>();
  #shapes = 0;
  /** Key lists (as JSON) built key by key once: a second sighting compiles. Bounded like the factory table. */
  readonly #seen = new Set<string>();

  /** The object of the first `count` entries of `keys` and `values` (this builder's scratch lists by default). */
  build(count: number, keys: readonly string[] = this.keys, values: readonly unknown[] = this.values): Record<string, unknown> {
    const last = this.#last;
    if (last !== undefined && sameKeys(keys, last.keys, count)) return last.factory(values);
    const bucket = count === 0 ? undefined : this.#byLastKey.get(keys[count - 1]!);
    if (bucket !== undefined) {
      for (let i = 0; i < bucket.length; i++) {
        const shape = bucket[i]!;
        if (sameKeys(keys, shape.keys, count)) {
          this.#last = shape;
          return shape.factory(values);
        }
      }
    }
    return this.#buildOther(count, keys, values);
  }

  #buildOther(count: number, allKeys: readonly string[], values: readonly unknown[]): Record<string, unknown> {
    // A frozen list (the JSON scan's names) cannot change under a factory that keeps it; a scratch list can.
    const keys = allKeys.length === count && Object.isFrozen(allKeys) ? allKeys : allKeys.slice(0, count);
    if (count > 0 && count <= MAX_SHAPE_KEYS && !keys.includes('__proto__')) {
      const id = JSON.stringify(keys);
      let factory = factories.get(id);
      if (factory === undefined && this.#seen.has(id)) {
        factory = compileFactory(keys);
        if (factories.size >= MAX_SHAPES) factories.clear();
        factories.set(id, factory);
      }
      if (factory !== undefined) {
        this.#remember({ keys, factory });
        return factory(values);
      }
      if (this.#seen.size >= MAX_SHAPES) this.#seen.clear();
      this.#seen.add(id);
    }
    const object: Record<string, unknown> = {};
    for (let i = 0; i < count; i++) setOwnProperty(object, keys[i]!, values[i]);
    return object;
  }

  #remember(shape: Shape): void {
    if (this.#shapes >= MAX_SHAPES) {
      this.#byLastKey.clear();
      this.#shapes = 0;
    }
    const lastKey = shape.keys[shape.keys.length - 1]!;
    const bucket = this.#byLastKey.get(lastKey);
    if (bucket === undefined) this.#byLastKey.set(lastKey, [shape]);
    else bucket.push(shape);
    this.#shapes++;
    this.#last = shape;
  }
}

function compileFactory(keys: readonly string[]): ShapeFactory {
  const properties = keys.map((key, i) => `${JSON.stringify(key)}: values[${i}]`);
  return new Function('values', `return { ${properties.join(', ')} };`) as ShapeFactory;
}
