import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";

/** A page's heading (focused when the page opens) and the tab's title. */
export function PageTitle({ children, title }: { children: ComponentChildren; title: string }) {
  useEffect(() => {
    document.title = `${title} · Muster`;
  }, [title]);
  return <h1 tabIndex={-1}>{children}</h1>;
}
