// `export-types --role user` (./database_user.ts): what the role may not see or do does not compile.
import type { Database } from "./database_user.js";

const post: Database["posts"]["Row"] = { id: 1, title: "Hello", body: "", published: true, user_id: 1 };
const draft: Database["posts"]["Insert"] = { title: "Draft" };

// @ts-expect-error: created_at is not among the role's select columns
export const created = post.created_at;
// @ts-expect-error: user_id is preset by the rules, not given
export const byWhom: Database["posts"]["Insert"] = { title: "Draft", user_id: 2 };
// @ts-expect-error: the role may select users but not insert into them
export const user: Database["users"]["Insert"] = { name: "Eve" };
// @ts-expect-error: nor update them
export const rename: Database["users"]["Update"] = { name: "Eve" };
// @ts-expect-error: comments are not the role's to select
export type Comment = Database["comments"]["Row"];

export const values = [post, draft];
