// The README's "JavaScript / TypeScript SDK" example, run as printed (only the
// server's URL replaced) against a server without permissions over the demo database.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { env } from "./helpers.js";

const README = fileURLToPath(new URL("../../../README.md", import.meta.url));
const ORIGIN = "http://127.0.0.1:8000";

export function readmeExample() {
  const text = readFileSync(README, "utf8");
  const section = text.split("\n## JavaScript / TypeScript SDK\n")[1]?.split("\n## ")[0];
  assert.ok(section, "README.md has a 'JavaScript / TypeScript SDK' section");
  const blocks = [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.equal(blocks.length, 1, "the section holds exactly one ```js example");
  return blocks[0];
}

test("the README example runs as printed", async () => {
  assert.ok(env.openUrl, "FORGEGRAPH_SDK_OPEN_URL must be set");
  const example = readmeExample();
  assert.ok(example.includes(`"${ORIGIN}"`), `the example should use ${ORIGIN}`);
  // Inside the package, so that `import "forgegraph"` resolves to it (and "ws" to its node_modules).
  const script = fileURLToPath(new URL(`./.readme-${process.pid}.mjs`, import.meta.url));
  writeFileSync(script, example.replace(`"${ORIGIN}"`, JSON.stringify(env.openUrl)));
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
    assert.equal(stderr, "");
    const lines = stdout.trim().split("\n");
    const events = lines.filter((line) => /^(create|update|delete) /.test(line));
    assert.deepEqual(events, ["create Hello false", "create Again false", "update Hello true"]);
    const rest = lines.filter((line) => !events.includes(line)).join("\n");
    assert.equal(rest, [
      "[",
      "  { title: 'Hello', published: true },",
      "  { title: 'Again', published: false }",
      "]",
      "{ count: 1 }",
    ].join("\n"));
  } finally {
    rmSync(script, { force: true });
  }
});
