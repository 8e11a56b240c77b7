// The resume guarantee: a connection reset mid-stream, a server SIGKILLed and
// started again, a token that expires: the callback gets every event exactly
// once, in cursor order.
import { after, test } from "node:test";
import assert from "node:assert/strict";

import { Proxy, ServerProcess, admin, client, env, exactlyOnce, freePort, mint, sleep, until, writeSqlite } from "./helpers.js";

const MUTATIONS = 200;
const closing = [];
after(async () => {
  for (const close of closing.reverse()) await close();
});

/** 200 mixed mutations over `posts` through `db`: creates, updates, deletes; the events they must cause. */
async function writeMixed(db, tag, count, userId = 1) {
  const posts = db.table("posts");
  const expected = [];
  const alive = [];
  for (let i = 0; i < count; i++) {
    if (i % 5 === 3 && alive.length) {
      const id = alive[alive.length - 1];
      await posts.update({ id: { _eq: id } }, { body: `edit ${i}` }, { returning: ["id"] });
      expected.push(["update", id]);
    } else if (i % 5 === 4 && alive.length > 1) {
      const id = alive.shift();
      await posts.delete({ id: { _eq: id } }, { returning: ["id"] });
      expected.push(["delete", id]);
    } else {
      const [row] = await posts.insert({ title: `${tag} ${i}`, body: "", user_id: userId }, { returning: ["id"] });
      alive.push(row.id);
      expected.push(["create", row.id]);
    }
  }
  return expected;
}

test("a proxy resetting the connection 4 times during 200 mutations costs the callback nothing", async () => {
  const proxy = await new Proxy(env.url).start();
  const through = client(proxy.url, { adminSecret: env.adminSecret });
  const direct = admin();
  closing.push(() => proxy.close(), () => through.close(), () => direct.close());
  const tag = `cut${Date.now()}`;
  const got = [];
  const cutAt = new Set([30, 80, 81, 140]);
  const unsubscribe = through.table("posts").subscribe((event) => {
    got.push(event);
    if (cutAt.has(got.length)) proxy.cut();
  }, { where: { title: { _like: `${tag} %` } } });
  await unsubscribe.ready;
  const expected = await writeMixed(direct, tag, MUTATIONS);
  // One more change after the others: once it has arrived, so has everything before it.
  const [marker] = await direct.table("posts").insert({ title: `${tag} marker`, body: "", user_id: 1 }, { returning: ["id"] });
  expected.push(["create", marker.id]);
  await until(() => got.length >= expected.length, `${expected.length} events`, 60_000);
  await sleep(200); // a duplicate would arrive here
  exactlyOnce(got, expected);
  assert.equal(proxy.cuts, 4);
  // A reset may land while the socket is already being reopened (two cuts in one
  // received batch): at least one reopening, however the cuts fell.
  assert.ok(through.realtime.opened >= 2, `opened ${through.realtime.opened} times`);
  unsubscribe();
});

test("a server SIGKILLed and started again: the changes written meanwhile are delivered after resume", async () => {
  assert.ok(env.restartDb && env.python, "FORGEGRAPH_SDK_RESTART_DB and FORGEGRAPH_SDK_PYTHON must be set");
  const server = new ServerProcess(`sqlite+aiosqlite:///${env.restartDb}`, await freePort());
  await server.start();
  closing.push(() => server.stop());
  const db = client(server.url);
  closing.push(() => db.close());
  const got = [];
  const errors = [];
  const unsubscribe = db.table("posts").subscribe((event) => got.push(event), { onError: (e) => errors.push(e) });
  await unsubscribe.ready;
  const expected = await writeMixed(db, "restart", 30);
  await until(() => got.length === expected.length, "the events before the kill");
  await server.kill();

  // 10 changes committed while no server runs, straight into the file: capture's triggers log them.
  const statements = [];
  for (let i = 0; i < 10; i++) {
    statements.push(i % 3 === 2
      ? ["UPDATE posts SET title = ? WHERE id = (SELECT max(id) FROM posts)", [`offline edit ${i}`]]
      : ["INSERT INTO posts (title, body, user_id) VALUES (?, '', 1)", [`offline ${i}`]]);
  }
  const ids = writeSqlite(env.restartDb, statements);
  let last = null;
  ids.forEach((id, i) => {
    if (i % 3 === 2) expected.push(["update", last]);
    else {
      last = id;
      expected.push(["create", id]);
    }
  });
  await sleep(300); // the client is retrying meanwhile
  await server.start();
  const [after_] = await db.table("posts").insert({ title: "after the restart", body: "", user_id: 1 }, { returning: ["id"] });
  expected.push(["create", after_.id]);
  await until(() => got.length >= expected.length, `${expected.length} events after the restart`, 60_000);
  await sleep(200);
  exactlyOnce(got, expected);
  assert.deepEqual(errors, []);
  assert.ok(db.realtime.opened >= 2);
  unsubscribe();
});

test("a token that expires is replaced through getToken, and no event is lost", async () => {
  // Tokens live 2 s: the server closes the subscription's socket with 4403 at expiry.
  const minted = [];
  const db = client(env.url, {
    getToken: async () => {
      const token = mint("1", { lifetime: 2 });
      minted.push(token);
      return token;
    },
  });
  const direct = admin();
  closing.push(() => db.close(), () => direct.close());
  const tag = `exp${Date.now()}`;
  const got = [];
  const errors = [];
  const unsubscribe = db.table("posts").subscribe((event) => got.push(event), {
    where: { title: { _like: `${tag} %` } },
    onError: (e) => errors.push(e),
  });
  await unsubscribe.ready;
  const opened = db.realtime.opened;
  const expected = [];
  const deadline = Date.now() + 5_500; // past at least two expiries
  for (let i = 0; Date.now() < deadline; i++) {
    const [row] = await direct.table("posts").insert({ title: `${tag} ${i}`, body: "", user_id: 1 }, { returning: ["id"] });
    expected.push(["create", row.id]);
    await sleep(50);
  }
  await until(() => got.length >= expected.length, `${expected.length} events`, 60_000);
  await sleep(200);
  exactlyOnce(got, expected);
  assert.deepEqual(errors, []);
  assert.ok(db.realtime.opened >= opened + 2, `reconnected ${db.realtime.opened - opened} times`);
  assert.ok(minted.length >= 3, `getToken called ${minted.length} times`);
  unsubscribe();
});
