import type { ComponentChildren } from "preact";
import { useId, useRef } from "preact/hooks";

/**
 * A button that asks first, in a modal dialog (the browser's own <dialog>:
 * focus moves into it, Escape cancels, focus returns to the button).
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  confirmLabel: string;
  danger?: boolean;
  disabled?: boolean;
  onConfirm(): void;
  children?: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const close = () => dialog.current?.close();
  return (
    <>
      <button type="button" class={props.danger ? "danger" : "secondary"} disabled={props.disabled} onClick={() => dialog.current?.showModal()}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-labelledby={titleId}>
        <h2 id={titleId}>{props.title}</h2>
        {props.children}
        <div class="actions">
          <button type="button" class="secondary" onClick={close} autofocus>
            Cancel
          </button>
          <button
            type="button"
            class={props.danger ? "danger" : "primary"}
            onClick={() => {
              close();
              props.onConfirm();
            }}
          >
            {props.confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}
