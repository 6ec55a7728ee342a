import { useState } from "preact/hooks";

/**
 * Cursor pagination as the API gives it: forward by next_cursor, back along
 * the cursors already followed. A new `scope` (other filters) starts again
 * from the first page.
 */
export function useCursor(scope: string) {
  const [state, setState] = useState<{ scope: string; trail: string[] }>({ scope, trail: [] });
  const trail = state.scope === scope ? state.trail : [];
  return {
    cursor: trail[trail.length - 1],
    page: trail.length + 1,
    next: (cursor: string) => setState({ scope, trail: [...trail, cursor] }),
    previous: () => setState({ scope, trail: trail.slice(0, -1) }),
  };
}

export function Pager({ pager, nextCursor, count }: { pager: ReturnType<typeof useCursor>; nextCursor: string | null | undefined; count: number }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" class="secondary" disabled={pager.page === 1} onClick={pager.previous}>
        ← Previous
      </button>
      <span class="muted">
        Page {pager.page} · {count} shown
      </span>
      <button type="button" class="secondary" disabled={!nextCursor} onClick={() => nextCursor && pager.next(nextCursor)}>
        Next →
      </button>
    </nav>
  );
}
