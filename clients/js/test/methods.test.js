// Every method of the SDK against a live server with a permissions file
// (tests/test_auth.py's rules over the demo database; tests/test_js_sdk.py starts it).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { ForgegraphError, createClient, endpoints } from "forgegraph";
import { admin, client, env, mint, until } from "./helpers.js";

const root = admin();
const alice = client(env.url, { token: mint("1") });
const bob = client(env.url, { getToken: () => mint("2") });
const anonymous = client();
const tag = `m${Date.now()}`;

before(async () => {
  await root.table("users").insert([{ id: 2, name: "Bob", email: "bob@example.com" }], { onConflict: { constraint: "users_pkey" } });
});

after(async () => {
  await Promise.all([root, alice, bob, anonymous].map((c) => c.close()));
});

test("endpoints derive /graphql over http and ws from a base URL or /graphql itself", () => {
  assert.deepEqual(endpoints("http://h:1"), { http: "http://h:1/graphql", ws: "ws://h:1/graphql" });
  assert.deepEqual(endpoints("https://h/api/graphql/"), { http: "https://h/api/graphql", ws: "wss://h/api/graphql" });
  assert.throws(() => createClient("ftp://h"), TypeError);
  assert.throws(() => root.table("posts { id }"), /not a valid GraphQL name/);
});

test("insert, select, byPk, update, updateByPk, delete, aggregate under the token's rules", async () => {
  const posts = alice.table("posts");
  // The rules set user_id from the token, and values travel as variables.
  const made = await posts.insert([
    { title: `${tag} one`, body: 'quote " } mutation { x }', published: true },
    { title: `${tag} two`, body: "", published: false },
  ]);
  assert.deepEqual(made.map((r) => [r.title, r.user_id, r.published]), [[`${tag} one`, 1, true], [`${tag} two`, 1, false]]);
  assert.equal(made[0].body, 'quote " } mutation { x }');
  const [one, two] = made;

  const mine = { title: { _like: `${tag}%` } };
  const rows = await posts.select({ where: mine, orderBy: { id: "desc" }, limit: 5, columns: ["id", "title"] });
  assert.deepEqual(rows, [{ id: two.id, title: `${tag} two` }, { id: one.id, title: `${tag} one` }]);
  assert.deepEqual(await posts.select({ where: mine, orderBy: [{ id: "asc" }], offset: 1, columns: ["title"] }), [{ title: `${tag} two` }]);
  assert.deepEqual(Object.keys(await posts.byPk({ id: one.id })).sort(), ["body", "created_at", "id", "published", "title", "user_id"]);
  assert.equal(await posts.byPk({ id: -1 }), null);

  // Bob sees the published post only, and cannot change Alice's.
  assert.deepEqual((await bob.table("posts").select({ where: mine, columns: ["id"] })).map((r) => r.id), [one.id]);
  assert.deepEqual(await bob.table("posts").update({ id: { _eq: one.id } }, { title: "stolen" }), []);
  // Anonymous sees only id and title: the columns are learned per role.
  assert.deepEqual(await anonymous.table("posts").select({ where: mine }), [{ id: one.id, title: `${tag} one` }]);

  const updated = await posts.update({ id: { _in: [one.id, two.id] } }, { published: true }, { returning: ["id", "published"] });
  assert.deepEqual(updated.sort((a, b) => a.id - b.id), [{ id: one.id, published: true }, { id: two.id, published: true }]);
  assert.equal((await posts.updateByPk({ id: two.id }, { title: `${tag} 2` })).title, `${tag} 2`);
  assert.equal(await posts.updateByPk({ id: -1 }, { title: "none" }), null);

  const counted = await posts.aggregate({ where: mine });
  assert.deepEqual(counted, { count: 2 });
  const stats = await root.table("posts").aggregate({ where: mine, count: { columns: ["user_id"], distinct: true }, max: ["id"], min: ["title"], sum: ["id"] });
  assert.deepEqual(stats, { count: 1, max: { id: two.id }, min: { title: `${tag} 2` }, sum: { id: one.id + two.id } });

  // _inc, as admin (the user role may not update user_id).
  const [bumped] = await root.table("posts").update({ id: { _eq: two.id } }, {}, { inc: { user_id: 1 }, returning: ["user_id"] });
  assert.deepEqual(bumped, { user_id: 2 });

  const deleted = await posts.delete({ id: { _eq: one.id } }, { returning: ["id"] });
  assert.deepEqual(deleted, [{ id: one.id }]);
  assert.equal(await posts.byPk({ id: one.id }), null);
});

test("insert with onConflict upserts", async () => {
  const users = root.table("users");
  const [made] = await users.insert({ name: `${tag} u` });
  const [upserted] = await users.insert(
    { id: made.id, name: `${tag} renamed` },
    { onConflict: { constraint: "users_pkey", update_columns: ["name"] }, returning: ["id", "name"] },
  );
  assert.deepEqual(upserted, { id: made.id, name: `${tag} renamed` });
});

test("server errors are ForgegraphError with the extensions code", async () => {
  const posts = root.table("posts");
  const [row] = await posts.insert({ title: `${tag} e`, user_id: 1 });
  const codeOf = async (promise) => {
    const error = await promise.then(() => assert.fail("expected an error"), (e) => e);
    assert.ok(error instanceof ForgegraphError, String(error));
    return error.code;
  };
  assert.equal(await codeOf(posts.insert({ id: row.id, title: "again", user_id: 1 })), "constraint-violation");
  assert.equal(await codeOf(posts.select({ where: { nope: { _eq: 1 } } })), "validation-failed");
  assert.equal(await codeOf(posts.select({ limit: -1 })), "validation-failed");
  assert.equal(await codeOf(alice.table("comments").select()), "validation-failed");
  assert.equal(await codeOf(anonymous.table("posts").insert({ title: "x" }, { returning: ["id"] })), "validation-failed");
  assert.equal(await codeOf(client(env.url, { token: "not-a-jwt" }).table("posts").select({ columns: ["id"] })), "invalid-jwt");
  const drafter = client(env.url, { token: mint("1", { role: "drafter" }) });
  assert.equal(await codeOf(drafter.table("posts").insert({ title: "x", published: true }, { returning: ["id"] })), "permission-denied");
  const unreachable = client("http://127.0.0.1:9");
  assert.equal((await codeOf(unreachable.table("posts").select({ columns: ["id"] }))), null);
});

test("subscribe delivers create, update and delete with cursor and old_record, under the rules", async () => {
  const got = [];
  const unsubscribe = alice.table("posts").subscribe((event) => got.push(event), { where: { title: { _like: `${tag} s%` } } });
  await unsubscribe.ready;
  assert.match(unsubscribe.cursor, /^\d+$/);
  const seenByBob = [];
  const bobs = bob.table("posts").subscribe((event) => seenByBob.push(event), { where: { title: { _like: `${tag} s%` } } });
  await bobs.ready;
  const posts = alice.table("posts");
  const [row] = await posts.insert({ title: `${tag} s1`, body: "" });
  await posts.update({ id: { _eq: row.id } }, { title: `${tag} s2` });
  await posts.delete({ id: { _eq: row.id } });
  await until(() => got.length === 3, "three events");
  assert.deepEqual(got.map((e) => [e.type, e.table, e.id]), [["create", "posts", row.id], ["update", "posts", row.id], ["delete", "posts", row.id]]);
  assert.equal(got[0].record.title, `${tag} s1`);
  assert.equal(got[0].old_record, null);
  assert.equal(got[1].old_record.title, `${tag} s1`);
  assert.equal(got[1].record.title, `${tag} s2`);
  assert.equal(got[2].record, null);
  assert.ok(BigInt(got[0].cursor) < BigInt(got[1].cursor) && BigInt(got[1].cursor) < BigInt(got[2].cursor));
  assert.equal(unsubscribe.cursor, got[2].cursor);

  // `since` replays what came after a cursor.
  const replayed = [];
  const again = alice.table("posts").subscribe((event) => replayed.push(event), { since: got[0].cursor, where: { title: { _like: `${tag} s%` } } });
  await until(() => replayed.length === 2, "the replay after the first cursor");
  assert.deepEqual(replayed.map((e) => e.cursor), [got[1].cursor, got[2].cursor]);
  again();

  // Unsubscribed: nothing more arrives. Bob never saw Alice's draft.
  unsubscribe();
  const [later] = await posts.insert({ title: `${tag} s3`, body: "" });
  const marker = [];
  const check = alice.table("posts").subscribe((event) => marker.push(event), { since: got[2].cursor, where: { title: { _like: `${tag} s%` } } });
  await until(() => marker.length === 1, "the later insert, on another subscription");
  assert.equal(marker[0].id, later.id);
  check();
  assert.equal(got.length, 3);
  assert.deepEqual(seenByBob, []);
  bobs();
});

test("errors retrying cannot fix go to onError and end the subscription", async () => {
  const onError = (errors) => (error) => errors.push(error);
  const cases = [
    [anonymous, "comments", {}], // a table the role may not select
    [root, "no_such_table", {}],
    [root, "posts", { since: "99999999999999" }], // never issued
    [root, "posts", { since: "not a cursor" }],
    [root, "posts", { where: { nope: { _eq: 1 } } }],
  ];
  for (const [who, table, options] of cases) {
    const errors = [];
    const events = [];
    who.table(table).subscribe((e) => events.push(e), { ...options, onError: onError(errors) });
    await until(() => errors.length === 1, `the error for ${table} ${JSON.stringify(options)}`);
    assert.ok(errors[0] instanceof ForgegraphError);
    assert.ok(errors[0].code, `a code for ${table} ${JSON.stringify(options)}: ${errors[0].message}`);
    assert.deepEqual(events, []);
  }
  const errors = [];
  root.table("posts").subscribe(() => {}, { since: "99999999999999", onError: onError(errors) });
  await until(() => errors.length === 1, "invalid-cursor");
  assert.equal(errors[0].code, "invalid-cursor");
  // An invalid token: refused at connection_init (4403), not retried forever.
  const refused = [];
  const bad = client(env.url, { token: mint("1", { lifetime: -60 }) });
  bad.table("posts").subscribe(() => {}, { since: "0", onError: onError(refused) });
  await until(() => refused.length === 1, "the refused token's error");
  assert.equal(refused[0].code, "invalid-jwt");
  await bad.close();
});

test("live() sends the query's result at once and again after each change", async () => {
  const results = [];
  const mine = { title: { _like: `${tag} L%` } };
  const stop = alice.table("posts").live({ where: mine, orderBy: { id: "asc" }, columns: ["title"] }, (rows) => results.push(rows));
  await until(() => results.length === 1, "the first result");
  assert.deepEqual(results[0], []);
  await alice.table("posts").insert({ title: `${tag} L1`, body: "" });
  await until(() => results.length === 2, "the result after an insert");
  assert.deepEqual(results[1], [{ title: `${tag} L1` }]);
  await alice.table("posts").update(mine, { title: `${tag} L2` });
  await until(() => results.length === 3, "the result after an update");
  assert.deepEqual(results[2], [{ title: `${tag} L2` }]);
  stop();

  const errors = [];
  anonymous.table("comments").live({ columns: ["id"], onError: (e) => errors.push(e) }, () => {});
  await until(() => errors.length === 1, "the live query's error");
  assert.ok(errors[0] instanceof ForgegraphError && errors[0].code);
});

test("one WebSocket carries every subscription of a client", async () => {
  const c = client(env.url, { adminSecret: env.adminSecret });
  const a = [], b = [];
  const ua = c.table("posts").subscribe((e) => a.push(e), { where: { title: { _eq: `${tag} one-socket` } } });
  const ub = c.table("users").subscribe((e) => b.push(e), { where: { name: { _eq: `${tag} one-socket` } } });
  await Promise.all([ua.ready, ub.ready]);
  await root.table("posts").insert({ title: `${tag} one-socket`, user_id: 1 });
  await root.table("users").insert({ name: `${tag} one-socket` });
  await until(() => a.length === 1 && b.length === 1, "both events");
  assert.equal(c.realtime.opened, 1);
  ua();
  ub();
  await c.close();
});

test("without a WebSocket implementation the subscription fails through onError, not silently", async () => {
  if (typeof globalThis.WebSocket !== "undefined") return; // Node 22+: there is one
  const errors = [];
  const db = createClient(env.url, { adminSecret: env.adminSecret });
  const unsubscribe = db.table("posts").subscribe(() => {}, { onError: (e) => errors.push(e) });
  await assert.rejects(unsubscribe.ready, /WebSocket implementation missing/);
  await until(() => errors.length === 1, "the error");
  assert.ok(errors[0] instanceof ForgegraphError);
});
