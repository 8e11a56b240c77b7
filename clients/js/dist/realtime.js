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
import { createClient as createWsClient } from "graphql-ws/client";
import { ConnectionFailed, ForgegraphError } from "./errors.js";
export const DEFAULT_BACKOFF = { initial: 100, maximum: 5000, factor: 2, jitter: 0.5 };
export function backoffDelay(backoff, attempt) {
    const base = Math.min(backoff.maximum, backoff.initial * Math.pow(backoff.factor, Math.min(attempt, 32)));
    return base * (1 - backoff.jitter * Math.random());
}
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Close codes after which reconnecting cannot help (graphql-ws itself gives up on
// 4400, 4401, 4409, 4429...). 4403 is retried only with `getToken` and only after
// a socket that was accepted: a token refused at connection_init stays refused.
const FORBIDDEN = 4403;
const FINAL_CODES = {
    4400: "validation-failed",
    4401: "invalid-jwt",
    4403: "invalid-jwt",
    4409: "validation-failed",
    4429: "validation-failed",
    4406: "validation-failed",
};
function isClose(value) {
    return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}
/** What ended a graphql-ws operation, as the SDK's error. */
export function asError(error) {
    if (error instanceof ForgegraphError)
        return error;
    if (isClose(error)) {
        const code = FINAL_CODES[error.code] ?? null;
        const message = `the server closed the connection with ${error.code}` + (error.reason ? `: ${error.reason}` : "");
        return code ? new ForgegraphError(message, code) : new ConnectionFailed(message);
    }
    if (Array.isArray(error))
        return ForgegraphError.fromGraphQL(error);
    if (error instanceof Error)
        return new ConnectionFailed(error.message);
    const message = error?.message;
    return new ConnectionFailed(typeof message === "string" && message ? message : "the connection failed");
}
/** The one socket: created on the first subscription, closed when the last one ends. */
export class Realtime {
    constructor(options) {
        this.options = options;
        /** Sockets opened and acknowledged so far. */
        this.opened = 0;
        this.ws = null;
        this.acknowledged = false;
        this.refusedInARow = 0;
        this.lastVerdict = null;
    }
    subscribe(payload, sink) {
        return this.client().subscribe(payload, sink);
    }
    async close() {
        const ws = this.ws;
        this.ws = null;
        if (ws)
            await ws.dispose();
    }
    client() {
        if (this.ws)
            return this.ws;
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
    shouldRetry(event) {
        const verdict = this.lastVerdict;
        if (verdict !== null && verdict.event === event)
            return verdict.retry;
        let retry = true;
        if (isClose(event) && event.code === FORBIDDEN) {
            // The token expired on an accepted socket: a fresh one from getToken may do.
            // Refused at connection_init: one more try with a fresh token, then give up.
            if (!this.options.refreshable)
                retry = false;
            else if (!this.acknowledged)
                retry = ++this.refusedInARow < 2;
        }
        else if (isClose(event) && event.code in FINAL_CODES) {
            retry = false;
        }
        this.lastVerdict = { event, retry };
        return retry;
    }
}
