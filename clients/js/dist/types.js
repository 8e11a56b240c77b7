/**
 * The typing contract: `forgegraph export-types --lang ts` prints a `Database`
 * of this shape, and `createClient<Database>(...)` types every table from it.
 */
export {};
