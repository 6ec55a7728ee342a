import { useState } from "preact/hooks";

/** Copies text to the clipboard; where the Clipboard API is not offered (plain HTTP), selects it for Ctrl+C. */
export function CopyButton({ text, label = "Copy", target }: { text: string; label?: string; target?: string }) {
  const [copied, setCopied] = useState<"yes" | "select" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("yes");
    } catch {
      const element = target ? document.getElementById(target) : null;
      if (element) getSelection()?.selectAllChildren(element);
      setCopied("select");
    }
    setTimeout(() => setCopied(null), 2000);
  };
  return (
    <button type="button" class="secondary" onClick={copy} aria-live="polite">
      {copied === "yes" ? "Copied" : copied === "select" ? "Selected: press Ctrl+C" : label}
    </button>
  );
}

/** A secret or command in a box of its own, with its copy button. */
export function CodeBlock({ id, text, copyLabel }: { id: string; text: string; copyLabel?: string }) {
  return (
    <div class="codeblock">
      <pre id={id} tabIndex={0}>
        <code>{text}</code>
      </pre>
      <CopyButton text={text} target={id} {...(copyLabel ? { label: copyLabel } : {})} />
    </div>
  );
}
