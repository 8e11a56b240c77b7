/**
 * forgegraph: typed tables and change subscriptions that resume without loss,
 * for a forgegraph server (SPEC section 10), in browsers and Node 20+.
 */

export { createClient, endpoints, Client, Table } from "./client.js";
export type { ClientOptions } from "./client.js";
export { ForgegraphError, ConnectionFailed } from "./errors.js";
export type { GraphQLErrorShape } from "./errors.js";
export { DEFAULT_BACKOFF } from "./realtime.js";
export type { Backoff, ConnectionListeners } from "./realtime.js";
export type * from "./types.js";
