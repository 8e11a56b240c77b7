/** What the SDK throws: one error type carrying the server's `extensions.code`. */
/**
 * The server refused a request or a subscription, or could not be reached.
 *
 * `code` is the GraphQL `extensions.code` of the first error
 * (`validation-failed`, `permission-denied`, `constraint-violation`,
 * `invalid-jwt`, `not-found`, `invalid-cursor`), or null when the server gave
 * none. `errors` holds every GraphQL error of the response as sent.
 */
export class ForgegraphError extends Error {
    constructor(message, code = null, errors = []) {
        super(message);
        this.name = "ForgegraphError";
        this.code = code;
        this.errors = errors;
    }
    /** The error for a GraphQL `errors` list (as in a response or an `error` message). */
    static fromGraphQL(errors) {
        const listed = (Array.isArray(errors) ? errors : [errors]).filter((e) => typeof e === "object" && e !== null);
        const first = listed[0] ?? { message: "unknown error" };
        const code = first.extensions?.code;
        return new ForgegraphError(String(first.message ?? "unknown error"), typeof code === "string" ? code : null, listed);
    }
}
/** The server could not be reached, or the connection broke before it answered. */
export class ConnectionFailed extends ForgegraphError {
    constructor(message) {
        super(message, null);
        this.name = "ConnectionFailed";
    }
}
