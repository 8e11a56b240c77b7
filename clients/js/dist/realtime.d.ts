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
import { type Sink } from "graphql-ws/client";
import { ForgegraphError } from "./errors.js";
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
export declare const DEFAULT_BACKOFF: Backoff;
export declare function backoffDelay(backoff: Backoff, attempt: number): number;
export declare const sleep: (ms: number) => Promise<void>;
/** What ended a graphql-ws operation, as the SDK's error. */
export declare function asError(error: unknown): ForgegraphError;
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
export declare class Realtime {
    private readonly options;
    /** Sockets opened and acknowledged so far. */
    opened: number;
    private ws;
    private acknowledged;
    private refusedInARow;
    private lastVerdict;
    constructor(options: RealtimeOptions);
    subscribe(payload: {
        query: string;
        variables: Record<string, unknown>;
    }, sink: Sink<ExecutionPayload>): () => void;
    close(): Promise<void>;
    private client;
    /** Asked once per subscription for the same close: decide once per close. */
    private shouldRetry;
}
