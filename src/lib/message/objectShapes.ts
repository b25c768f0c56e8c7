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

/**
 * Builds objects from key and value lists. The objects of one source carry the same few key lists, so each key list
 * that comes twice in a row gets a factory: a function returning an object literal with those keys, built from
 * V8's literal boilerplate in one step, where assigning the keys one by one goes through a property transition per
 * key (on a store site shared by every key of every object, so megamorphic) and, for numbers, a keyed store that
 * boxes each value on its own. avsc compiles its readers the same way. The literal is generated from
 * JSON.stringify'd keys, each a closed string literal whatever the device wrote; `__proto__`, which a literal would
 * treat as the prototype, and key lists never repeated or longer than MAX_SHAPE_KEYS are assigned one by one.
 * Property order and duplicate keys come out as sequential assignment makes them.
 */
export class ObjectShapes {
  /** Scratch lists for callers that fill keys and values before `build`; entries past the count are stale. */
  readonly keys: string[] = [];
  readonly values: unknown[] = [];
  /** The key list of the last object built by a factory, and that factory. */
  #lastKeys: readonly string[] = [];
  #lastFactory: ShapeFactory | undefined;
  /** The key list (as its JSON) of the last object built key by key: a second sighting compiles it. */
  #previousId: string | undefined;

  /** The object of the first `count` entries of `keys` and `values` (this builder's scratch lists by default). */
  build(count: number, keys: readonly string[] = this.keys, values: readonly unknown[] = this.values): Record<string, unknown> {
    const factory = this.#lastFactory;
    const last = this.#lastKeys;
    if (factory !== undefined && last.length === count) {
      // Callers hand over the same key strings (string caches, the JSON scan's names), so this is usually a pointer
      // comparison per key, or none when the list itself is the last one.
      let i = keys === last ? count : 0;
      while (i < count && keys[i] === last[i]) i++;
      if (i === count) return factory(values);
    }
    return this.#buildOther(count, keys, values);
  }

  #buildOther(count: number, allKeys: readonly string[], values: readonly unknown[]): Record<string, unknown> {
    const keys = allKeys.length === count && Object.isFrozen(allKeys) ? allKeys : allKeys.slice(0, count);
    if (count <= MAX_SHAPE_KEYS && !keys.includes('__proto__')) {
      const id = JSON.stringify(keys);
      let factory = factories.get(id);
      if (factory === undefined && id === this.#previousId) {
        factory = compileFactory(keys);
        if (factories.size >= MAX_SHAPES) factories.clear();
        factories.set(id, factory);
      }
      this.#previousId = id;
      if (factory !== undefined) {
        this.#lastKeys = keys;
        this.#lastFactory = factory;
        return factory(values);
      }
    }
    const object: Record<string, unknown> = {};
    for (let i = 0; i < count; i++) setOwnProperty(object, keys[i]!, values[i]);
    return object;
  }
}

function compileFactory(keys: readonly string[]): ShapeFactory {
  const properties = keys.map((key, i) => `${JSON.stringify(key)}: values[${i}]`);
  return new Function('values', `return { ${properties.join(', ')} };`) as ShapeFactory;
}
