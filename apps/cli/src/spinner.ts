/** Where a spinner draws: a stream that may be a terminal. */
export interface SpinnerStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface Spinner {
  update(text: string): void;
  /** Clears the spinner; prints `final` in its place if given. */
  stop(final?: string): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS = 80;

/**
 * A one-line spinner. On a terminal it animates in place; anywhere else (a
 * pipe, a CI log) it prints each new text once, as a plain line, so logs stay
 * readable and nothing depends on cursor movement.
 */
export function startSpinner(stream: SpinnerStream, text: string): Spinner {
  if (!stream.isTTY) {
    let last = "";
    const say = (next: string) => {
      if (next !== last) stream.write(`${next}\n`);
      last = next;
    };
    say(text);
    return { update: say, stop: (final) => final !== undefined && stream.write(`${final}\n`) };
  }

  let frame = 0;
  let current = text;
  const draw = () => stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${current}`);
  stream.write("\x1b[?25l");
  draw();
  const timer = setInterval(draw, FRAME_MS);
  return {
    update(next) {
      current = next;
    },
    stop(final) {
      clearInterval(timer);
      stream.write(`\r\x1b[2K\x1b[?25h${final !== undefined ? `${final}\n` : ""}`);
    },
  };
}
