/** Reads a fetch body stream as text as it arrives. */
export function reader(res: Response): { text: () => string; stop: () => void } {
  let buf = '';
  const r = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        buf += value;
      }
    } catch {
      // cancelled
    }
  })();
  return { text: () => buf, stop: () => void r.cancel().catch(() => {}) };
}
