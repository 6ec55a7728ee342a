type Listener<T> = (payload: T) => void | Promise<void>;

/**
 * A small typed event emitter (no Node built-in, so the runtime's core stays
 * portable). A listener that throws or rejects is reported through `onListenerError`
 * and never breaks the emitter's caller: a faulty hook must not stop the heartbeat.
 */
export class TypedEmitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (event: keyof Events, error: unknown) => void) {}

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      return listener(payload);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        const result = (listener as Listener<Events[K]>)(payload);
        if (result instanceof Promise) result.catch((error: unknown) => this.onListenerError(event, error));
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }
}
