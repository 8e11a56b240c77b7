// A sample app over types as `forgegraph export-types --lang ts` prints them:
// test/types.test.js compiles it with `tsc --noEmit` (it must pass), and
// again with one deliberate mistake at a time (each must fail).
import { createClient, type ChangeEvent } from "forgegraph";

export interface Database {
  posts: {
    Row: { id: number; title: string; body: string; published: boolean; user_id: number; created_at: string | null };
    Insert: { id?: number; title: string; body?: string; published?: boolean; user_id: number; created_at?: string | null };
    Update: { id?: number; title?: string; body?: string; published?: boolean; user_id?: number; created_at?: string | null };
  };
  users: {
    Row: { id: number; name: string; email: string | null; created_at: string | null };
    Insert: { id?: number; name: string; email?: string | null; created_at?: string | null };
    Update: { id?: number; name?: string; email?: string | null; created_at?: string | null };
  };
}

export async function main(url: string): Promise<string> {
  const db = createClient<Database>(url, { token: "t" });
  const posts = db.table("posts");
  const rows = await posts.select({ where: { title: { _eq: "x" }, _or: [{ published: { _eq: true } }] }, orderBy: { id: "desc" }, limit: 3 });
  const title: string = rows[0].title;
  const [made] = await posts.insert({ title: "new", user_id: 1 });
  const id: number = made.id;
  await posts.update({ id: { _in: [id] } }, { published: true }, { inc: { user_id: 1 } });
  await posts.delete({ id: { _eq: id } });
  const counted = await posts.aggregate({ where: { published: { _eq: true } } });
  const n: number | undefined = counted.count;
  const unsubscribe = posts.subscribe((event: ChangeEvent<Database["posts"]["Row"]>) => {
    if (event.record) console.log(event.record.title.toUpperCase(), event.cursor);
  }, { where: { user_id: { _eq: 1 } } });
  unsubscribe();
  const stop = db.table("users").live({ orderBy: { name: "asc" } }, (users) => console.log(users.map((u) => u.name)));
  stop();
  // Untyped: anything goes.
  const loose = createClient(url);
  const any = await loose.table("whatever").select({ where: { anything: { _eq: 1 } } });
  return title + String(n) + String(any[0]?.anything);
}
