/**
 * The client's one graphql-transport-ws socket (graphql-ws), shared by all its
 * subscriptions, and the resume guarantee on top of it.
 *
 * While any subscription is open the socket is kept up: after a drop,
 * graphql-ws reopens it (waiting `Backoff`: exponential, capped, jittered)
 * and sends every subscription again. A change subscription is sent again with
 * `since` = the last cursor it delivered, so the server replays what was
 * committed meanwhile (SPEC section 5: no gap, no duplicate); events at or
 * below that cursor are dropped here too, whatever the server sends.
 * `connectionParams` asks `getToken` again for every socket, so a token that
 * expired (the server closes with 4403 at expiry) is replaced on reconnect.
 */

import { createClient as createWsClient, type Client as WsClient, type Sink } from "graphql-ws/client";

import { ConnectionFailed, ForgegraphError } from "./errors.js";

/** How long to wait before reconnecting: exponential, capped, with jitter (milliseconds). */
export interface Backoff {
  /** Before the first retry (default 100). */
  initial: number;
  /** No wait is longer than this (default 5000). */
  maximum: number;
  /** Growth per attempt (default 2). */
  factor: number;
  /**
   * Each wait is cut by a random share up to this (default 0.5), so that many
   * clients dropped at once (a server restart) do not come back in lock-step.
   */
  jitter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initial: 100, maximum: 5000, factor: 2, jitter: 0.5 };

export function backoffDelay(backoff: Backoff, attempt: number): number {
  const base = Math.min(backoff.maximum, backoff.initial * Math.pow(backoff.factor, Math.min(attempt, 32)));
  return base * (1 - backoff.jitter * Math.random());
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Close codes after which reconnecting cannot help (graphql-ws itself gives up on
// 4400, 4401, 4409, 4429...). 4403 is retried only with `getToken` and only after
// a socket that was accepted: a token refused at connection_init stays refused.
const FORBIDDEN = 4403;
const FINAL_CODES: Record<number, string> = {
  4400: "validation-failed",
  4401: "invalid-jwt",
  4403: "invalid-jwt",
  4409: "validation-failed",
  4429: "validation-failed",
  4406: "validation-failed",
};

interface CloseLike {
  code: number;
  reason: string;
}

function isClose(value: unknown): value is CloseLike {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}

/** What ended a graphql-ws operation, as the SDK's error. */
export function asError(error: unknown): ForgegraphError {
  if (error instanceof ForgegraphError) return error;
  if (isClose(error)) {
    const code = FINAL_CODES[error.code] ?? null;
    const message = `the server closed the connection with ${error.code}` + (error.reason ? `: ${error.reason}` : "");
    return code ? new ForgegraphError(message, code) : new ConnectionFailed(message);
  }
  if (Array.isArray(error)) return ForgegraphError.fromGraphQL(error);
  if (error instanceof Error) return new ConnectionFailed(error.message);
  const message = (error as { message?: unknown } | null)?.message;
  return new ConnectionFailed(typeof message === "string" && message ? message : "the connection failed");
}

export interface RealtimeOptions {
  url: string;
  headers: () => Promise<Record<string, string>>;
  refreshable: boolean;
  webSocketImpl?: unknown;
  backoff: Backoff;
  on?: ConnectionListeners;
}

/** What the socket is doing, for a status display. */
export interface ConnectionListeners {
  /** A socket is being opened (after a backoff wait, on a reconnect). */
  connecting?: () => void;
  /** The server accepted the socket (connection_ack). */
  connected?: () => void;
  /** The socket closed (a CloseEvent, or an error before it opened). */
  closed?: (event: unknown) => void;
}

export interface ExecutionPayload {
  data?: Record<string, unknown> | null;
  errors?: unknown[];
}

/** The one socket: created on the first subscription, closed when the last one ends. */
export class Realtime {
  /** Sockets opened and acknowledged so far. */
  opened = 0;
  private ws: WsClient | null = null;
  private acknowledged = false;
  private refusedInARow = 0;
  private lastVerdict: { event: unknown; retry: boolean } | null = null;

  constructor(private readonly options: RealtimeOptions) {}

  subscribe(payload: { query: string; variables: Record<string, unknown> }, sink: Sink<ExecutionPayload>): () => void {
    return this.client().subscribe(payload, sink as Sink);
  }

  async close(): Promise<void> {
    const ws = this.ws;
    this.ws = null;
    if (ws) await ws.dispose();
  }

  private client(): WsClient {
    if (this.ws) return this.ws;
    const { url, headers, webSocketImpl, backoff, on } = this.options;
    this.ws = createWsClient({
      url,
      webSocketImpl,
      lazy: true,
      retryAttempts: Infinity,
      connectionParams: async () => ({ headers: await headers() }),
      retryWait: (retries) => sleep(backoffDelay(backoff, retries)),
      shouldRetry: (event) => this.shouldRetry(event),
      on: {
        connecting: () => {
          this.acknowledged = false;
          on?.connecting?.();
        },
        connected: () => {
          this.acknowledged = true;
          this.refusedInARow = 0;
          this.opened += 1;
          on?.connected?.();
        },
        closed: (event) => on?.closed?.(event),
      },
    });
    return this.ws;
  }

  /** Asked once per subscription for the same close: decide once per close. */
  private shouldRetry(event: unknown): boolean {
    const verdict = this.lastVerdict;
    if (verdict !== null && verdict.event === event) return verdict.retry;
    let retry = true;
    if (isClose(event) && event.code === FORBIDDEN) {
      // The token expired on an accepted socket: a fresh one from getToken may do.
      // Refused at connection_init: one more try with a fresh token, then give up.
      if (!this.options.refreshable) retry = false;
      else if (!this.acknowledged) retry = ++this.refusedInARow < 2;
    } else if (isClose(event) && event.code in FINAL_CODES) {
      retry = false;
    }
    this.lastVerdict = { event, retry };
    return retry;
  }
}
