// The generated types alone, without the SDK: a row, an insert and an update of posts.
// tests/test_export_types.py compiles it with tsc, then again with `title` misspelt.
import type { Database, Json, TableInsert, TableUpdate } from "./database.js";

type Post = Database["posts"]["Row"];

const post: Post = { id: 1, title: "Hello", body: "", published: true, user_id: 1, created_at: null };
const draft: TableInsert<"posts"> = { title: "Draft", user_id: 1 };
const edit: TableUpdate<"posts"> = { title: "Edited" };
const when: string | null = post.created_at;
const anything: Json = { tags: ["a", 1, null], nested: { ok: true } };

export const values = [post.title, draft.title, edit.title, when, anything];
