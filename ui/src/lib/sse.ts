// A Server-Sent Events client over fetch: it sends `Last-Event-ID` itself when it reconnects
// (after a drop, with growing pauses), so a stream resumes where it stopped, with no gap and
// no repeat.

export type Frame = { id: string | null; event: string; data: string };

/** Splits a byte stream's text into frames, as the EventSource standard reads them. */
export class SseParser {
  private buf = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];

  push(chunk: string): Frame[] {
    this.buf += chunk;
    const out: Frame[] = [];
    let nl: number;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buf.slice(0, nl);
      const len = this.buf.startsWith("\r\n", nl) ? 2 : 1;
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (this.buf[nl] === "\r" && nl + 1 === this.buf.length) break;
      this.buf = this.buf.slice(nl + len);
      if (line === "") {
        if (this.data.length > 0) {
          out.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
        }
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id" && !value.includes("\0")) this.id = value;
    }
    return out;
  }
}

export type Link = "live" | "reconnecting" | "ended";

export type Follow = {
  /** Where to resume from: the last event id seen (or none). */
  from: string | null;
  onFrame: (f: Frame) => void;
  onLink: (l: Link) => void;
  /** Whether the stream's end is expected (the run ended): no reconnect then. */
  ended: () => boolean;
  /** A refused stream (401, 404): no reconnect. */
  onRefused: (status: number) => void;
};

/** Pause before reconnect attempt `n` (from 0): 0.5 s doubling to 15 s, with jitter. */
export function backoff(n: number, random = Math.random): number {
  const base = Math.min(15_000, 500 * 2 ** n);
  return Math.round(base * (0.75 + random() * 0.5));
}

/** Follows `url` until stopped (the returned function) or ended. */
export function follow(url: string, f: Follow, fetcher: typeof fetch = fetch): () => void {
  const stop = new AbortController();
  let last = f.from;
  let failures = 0;
  const run = async () => {
    while (!stop.signal.aborted) {
      try {
        const headers: Record<string, string> = { accept: "text/event-stream" };
        if (last !== null) headers["last-event-id"] = last;
        const resp = await fetcher(url, { headers, credentials: "same-origin", signal: stop.signal });
        if (resp.status === 401 || resp.status === 403 || resp.status === 404) {
          f.onRefused(resp.status);
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`stream answered ${resp.status}`);
        f.onLink("live");
        failures = 0;
        const parser = new SseParser();
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const frame of parser.push(value)) {
            if (frame.id !== null) last = frame.id;
            f.onFrame(frame);
          }
        }
        if (f.ended()) {
          f.onLink("ended");
          return;
        }
      } catch (e) {
        if (stop.signal.aborted) return;
      }
      f.onLink("reconnecting");
      await new Promise((r) => setTimeout(r, backoff(failures++)));
    }
  };
  void run();
  return () => stop.abort();
}
