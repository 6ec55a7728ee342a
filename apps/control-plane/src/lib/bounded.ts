/**
 * A Map and a Set that hold at most `max` entries: adding a new one past the
 * limit drops the oldest (insertion order). For per-process caches of a fleet,
 * whose size must not grow with every host or token ever seen.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.max && !this.has(key)) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}

export class BoundedSet<T> extends Set<T> {
  constructor(private readonly max: number) {
    super();
  }

  override add(value: T): this {
    if (this.size >= this.max && !this.has(value)) this.delete(this.values().next().value!);
    return super.add(value);
  }
}
