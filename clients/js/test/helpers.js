// Shared by the node tests: the servers tests/test_js_sdk.py started (env),
// tokens, waiting, a TCP proxy that can reset its connections, and
// `forgegraph serve` as a child process that can be SIGKILLed and restarted.
import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import net from "node:net";
import assert from "node:assert/strict";
import WebSocket from "ws";

import { createClient } from "forgegraph";

export const env = {
  /** A server with tests/test_auth.py's permissions, JWT secret and admin secret (demo database). */
  url: required("FORGEGRAPH_SDK_URL"),
  /** A server without permissions (demo database), for the README example. */
  openUrl: process.env.FORGEGRAPH_SDK_OPEN_URL,
  jwtSecret: required("FORGEGRAPH_SDK_JWT_SECRET"),
  adminSecret: required("FORGEGRAPH_SDK_ADMIN_SECRET"),
  python: process.env.FORGEGRAPH_SDK_PYTHON,
  root: process.env.FORGEGRAPH_SDK_ROOT,
  /** A demo SQLite file for a server this test starts, kills and starts again. */
  restartDb: process.env.FORGEGRAPH_SDK_RESTART_DB,
};

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/test_js_sdk.py`);
  return value;
}

export const FAST = { initial: 20, maximum: 300 };

export function client(url = env.url, options = {}) {
  return createClient(url, { webSocketImpl: WebSocket, backoff: FAST, ...options });
}

export const admin = (url = env.url) => client(url, { adminSecret: env.adminSecret });

const b64 = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT for user `sub`, expiring in `lifetime` seconds. */
export function mint(sub, { role = "user", lifetime = 3600 } = {}) {
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ sub, role, exp: Math.floor(Date.now() / 1000) + lifetime });
  const signature = createHmac("sha256", env.jwtSecret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait for `condition`; fail (with `what`) after `timeout` ms. */
export async function until(condition, what = "the condition", timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeout / 1000} s`);
    await sleep(10);
  }
}

/** Every expected (type, id) once, in order, and cursors strictly increasing. */
export function exactlyOnce(got, expected) {
  const cursors = got.map((e) => BigInt(e.cursor));
  for (let i = 1; i < cursors.length; i++) {
    assert.ok(cursors[i] > cursors[i - 1], `cursor ${cursors[i]} after ${cursors[i - 1]} (event ${i})`);
  }
  assert.deepEqual(got.map((e) => [e.type, e.id?.id ?? e.id]), expected);
}

/** A TCP proxy in front of `target` (http://host:port); `cut()` resets every connection through it. */
export class Proxy {
  constructor(target) {
    this.target = new URL(target);
    this.sockets = new Set();
    this.cuts = 0;
    this.accepting = true;
    this.server = net.createServer((downstream) => {
      if (!this.accepting) return downstream.resetAndDestroy();
      const upstream = net.connect(Number(this.target.port), this.target.hostname);
      for (const [a, b] of [[downstream, upstream], [upstream, downstream]]) {
        this.sockets.add(a);
        a.on("data", (chunk) => b.write(chunk));
        a.on("error", () => b.destroy());
        a.on("close", () => {
          this.sockets.delete(a);
          b.destroy();
        });
      }
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  /** Reset (TCP RST) every open connection. */
  cut() {
    this.cuts += 1;
    for (const socket of [...this.sockets]) socket.resetAndDestroy();
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `forgegraph serve` on a fixed port over `database`, in its own process group. */
export class ServerProcess {
  constructor(database, port, extra = []) {
    this.args = ["-m", "graph", "serve", "--database", database, "--port", String(port), "--broadcast", "memory://", ...extra];
    this.url = `http://127.0.0.1:${port}`;
    this.log = [];
  }

  async start() {
    const environment = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FORGEGRAPH_")));
    environment.PYTHONPATH = env.root;
    this.process = spawn(env.python, this.args, { env: environment, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    this.process.stdout.on("data", (chunk) => this.log.push(String(chunk)));
    this.process.stderr.on("data", (chunk) => this.log.push(String(chunk)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const response = await fetch(`${this.url}/healthz`);
        if (response.status === 200) return;
      } catch {
        // not up yet
      }
      if (this.process.exitCode !== null || Date.now() > deadline) {
        throw new Error(`serve did not start:\n${this.log.join("")}`);
      }
      await sleep(50);
    }
  }

  /** SIGKILL: no shutdown, no close frames. */
  async kill() {
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    process.kill(-this.process.pid, "SIGKILL");
    await exited;
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    process.kill(-this.process.pid, "SIGTERM");
    await exited;
  }
}

/** Run `statements` ([sql, params]) straight into a SQLite file, as another program; the last row ids. */
export function writeSqlite(path, statements) {
  const script = [
    "import json, sqlite3, sys",
    "db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)",
    "ids = [db.execute(sql, params).lastrowid for sql, params in json.loads(sys.stdin.read())]",
    "print(json.dumps(ids))",
  ].join("\n");
  const result = spawnSync(env.python, ["-c", script, path], { input: JSON.stringify(statements), encoding: "utf8" });
  if (result.status !== 0) throw new Error(`sqlite3 failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}
