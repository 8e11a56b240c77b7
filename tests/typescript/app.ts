// A sample app on the SDK, typed by `forgegraph export-types --lang ts` (./database.ts).
// tests/test_export_types.py compiles it with tsc, then again with `title` misspelt,
// which must fail on every line that names it.
import { createClient } from "forgegraph";
import type { Database } from "./database.js";

const db = createClient<Database>("http://127.0.0.1:8000/graphql", { token: "a.jwt.token" });
const posts = db.table("posts");

export async function main(): Promise<string[]> {
  const rows = await posts.select({ where: { published: { _eq: true } }, limit: 10 });
  const titles: string[] = rows.map((row) => row.title);
  const body: string = rows[0].body;
  const [created] = await posts.insert({ title: "Hello", user_id: 1 });
  const id: number = created.id;
  await posts.update({ id: { _eq: id } }, { title: "Hello again", published: true });
  const unsubscribe = posts.subscribe((event) => {
    console.log(event.type, event.record?.title);
  });
  unsubscribe();
  return [...titles, body];
}
