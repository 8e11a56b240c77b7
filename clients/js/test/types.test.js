// `tsc --noEmit` on a sample app typed as `forgegraph export-types --lang ts`
// prints (test/types/app.ts) passes, and each deliberate mistake fails to compile.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const TSC = here("../node_modules/typescript/bin/tsc");

function compile(source) {
  const app = here(`./types/.case-${process.pid}.ts`);
  const config = here(`./types/.tsconfig-${process.pid}.json`);
  const base = JSON.parse(readFileSync(here("./types/tsconfig.json"), "utf8"));
  writeFileSync(app, source);
  writeFileSync(config, JSON.stringify({ ...base, files: [app] }));
  try {
    return spawnSync(process.execPath, [TSC, "-p", config], { encoding: "utf8" });
  } finally {
    rmSync(app, { force: true });
    rmSync(config, { force: true });
  }
}

const APP = readFileSync(here("./types/app.ts"), "utf8");

test("the sample app compiles against the generated-style Database interface", () => {
  const result = compile(APP);
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

const MISTAKES = {
  "a misspelt column in where": ['title: { _eq: "x" }', 'titel: { _eq: "x" }'],
  "a value of the wrong type in where": ['title: { _eq: "x" }', "title: { _eq: 3 }"],
  "a misspelt column read from a row": ["rows[0].title;", "rows[0].titel;"],
  "an unknown column inserted": ['insert({ title: "new", user_id: 1 })', 'insert({ title: "new", user_id: 1, titel: "y" })'],
  "a required column missing from an insert": ['insert({ title: "new", user_id: 1 })', 'insert({ title: "new" })'],
  "a misspelt column updated": ["{ published: true }, { inc", "{ publishd: true }, { inc"],
  "a misspelt column in orderBy": ['orderBy: { name: "asc" }', 'orderBy: { nam: "asc" }'],
  "an unknown table": ['db.table("users")', 'db.table("user")'],
  "a misspelt column in an event's record": ["event.record.title.toUpperCase()", "event.record.titl.toUpperCase()"],
};

for (const [what, [right, wrong]] of Object.entries(MISTAKES)) {
  test(`${what} does not compile`, () => {
    assert.ok(APP.includes(right), `app.ts should contain ${right}`);
    const result = compile(APP.replace(right, wrong));
    assert.notEqual(result.status, 0, `compiled despite ${what}`);
    assert.match(result.stdout, /error TS\d+/);
  });
}
