/** What the SDK throws: one error type carrying the server's `extensions.code`. */
export interface GraphQLErrorShape {
    message?: string;
    extensions?: {
        code?: string;
        [key: string]: unknown;
    };
    [key: string]: unknown;
}
/**
 * The server refused a request or a subscription, or could not be reached.
 *
 * `code` is the GraphQL `extensions.code` of the first error
 * (`validation-failed`, `permission-denied`, `constraint-violation`,
 * `invalid-jwt`, `not-found`, `invalid-cursor`), or null when the server gave
 * none. `errors` holds every GraphQL error of the response as sent.
 */
export declare class ForgegraphError extends Error {
    readonly code: string | null;
    readonly errors: GraphQLErrorShape[];
    constructor(message: string, code?: string | null, errors?: GraphQLErrorShape[]);
    /** The error for a GraphQL `errors` list (as in a response or an `error` message). */
    static fromGraphQL(errors: unknown): ForgegraphError;
}
/** The server could not be reached, or the connection broke before it answered. */
export declare class ConnectionFailed extends ForgegraphError {
    constructor(message: string);
}
