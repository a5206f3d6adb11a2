import { describe, expect, it } from "vitest";
import { backoff, follow, SseParser, type Frame, type Link } from "./sse";

describe("SseParser", () => {
  it("reads frames split anywhere, with ids, names, comments and multi-line data", () => {
    const p = new SseParser();
    const text = ": hi\nid: 1\nevent: task.ready\ndata: {\"a\":\ndata: 1}\n\nid: 2\r\nevent: run.succeeded\r\ndata: {}\r\n\r\n";
    const frames: Frame[] = [];
    for (let i = 0; i < text.length; i += 3) frames.push(...p.push(text.slice(i, i + 3)));
    expect(frames).toEqual([
      { id: "1", event: "task.ready", data: "{\"a\":\n1}" },
      { id: "2", event: "run.succeeded", data: "{}" },
    ]);
  });
});

describe("backoff", () => {
  it("doubles from half a second up to fifteen", () => {
    const mid = () => 0.5;
    expect([0, 1, 2, 5, 9].map((n) => backoff(n, mid))).toEqual([500, 1000, 2000, 15000, 15000]);
  });
});

/** A fetch whose answers are scripted: each call gets the next body (then the stream ends). */
function scripted(bodies: string[], seen: (Record<string, string> | undefined)[]): typeof fetch {
  return (async (_url: RequestInfo | URL, init?: RequestInit) => {
    seen.push(init?.headers as Record<string, string>);
    const body = bodies.shift();
    if (body === undefined) return new Promise<Response>(() => {});
    return new Response(new Blob([body]).stream(), { status: 200 });
  }) as typeof fetch;
}

describe("follow", () => {
  it("resumes after a drop from the last id it saw, so nothing is missed or repeated", async () => {
    const seen: (Record<string, string> | undefined)[] = [];
    const frames: string[] = [];
    const links: Link[] = [];
    let ended = false;
    const fetcher = scripted(
      ["id: 4\nevent: task.ready\ndata: {}\n\nid: 5\nevent: task.started\ndata: {}\n\n", "id: 6\nevent: run.succeeded\ndata: {}\n\n"],
      seen,
    );
    await new Promise<void>((done) => {
      follow(
        "/runs/x/stream",
        {
          from: "3",
          onFrame: (f) => {
            frames.push(`${f.id}:${f.event}`);
            if (f.event === "run.succeeded") ended = true;
          },
          onLink: (l) => {
            links.push(l);
            if (l === "ended") done();
          },
          ended: () => ended,
          onRefused: () => done(),
        },
        fetcher,
      );
    });
    expect(frames).toEqual(["4:task.ready", "5:task.started", "6:run.succeeded"]);
    expect(seen.map((h) => h?.["last-event-id"])).toEqual(["3", "5"]);
    expect(links).toEqual(["live", "reconnecting", "live", "ended"]);
  });
});
