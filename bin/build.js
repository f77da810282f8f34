// The project's TypeScript as plain JavaScript, in .dataops/build, made on first use and
// again only for the sources that changed (each file's size and mtime are compared: a few
// milliseconds). The CLI, the program it runs in-process and the SQL engine's provider host
// then start without compiling TypeScript every time. Nothing else changes: the sources stay
// the truth, tests and `pulumi up` run them directly, and a failed build falls back to them.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const SOURCE_DIRS = ["audit", "cli", "components", "config", "lifecycle", "local", "naming"];
const SOURCE_FILES = ["index.ts", "program.ts", "stack.ts"];

function sources(root) {
    const out = SOURCE_FILES.filter((f) => fs.existsSync(path.join(root, f)));
    const walk = (dir) => {
        for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
            const rel = path.join(dir, e.name);
            if (e.isDirectory()) walk(rel);
            else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(rel);
        }
    };
    for (const d of SOURCE_DIRS) if (fs.existsSync(path.join(root, d))) walk(d);
    return out.sort();
}

function buildDir(root) {
    return path.join(root, ".dataops", "build");
}

/** Brings .dataops/build up to date; returns its path, or undefined when it cannot (the caller runs the sources). */
function ensureBuild(root) {
    const dir = buildDir(root);
    const stampFile = path.join(dir, "stamp.json");
    try {
        let stamp = {};
        try {
            stamp = JSON.parse(fs.readFileSync(stampFile, "utf8"));
        } catch {
            stamp = {};
        }
        const files = sources(root);
        const now = {};
        for (const f of files) {
            const s = fs.statSync(path.join(root, f));
            now[f] = `${s.size}:${s.mtimeMs}`;
        }
        const changed = files.filter((f) => stamp[f] !== now[f]);
        const removed = Object.keys(stamp).filter((f) => !(f in now));
        if (changed.length === 0 && removed.length === 0) return dir;
        const esbuild = require("esbuild");
        const tsconfig = JSON.parse(fs.readFileSync(path.join(root, "tsconfig.json"), "utf8"));
        for (const f of changed) {
            const out = path.join(dir, f.replace(/\.ts$/, ".js"));
            const { code } = esbuild.transformSync(fs.readFileSync(path.join(root, f), "utf8"), {
                loader: "ts",
                format: "cjs",
                platform: "node",
                target: "node20",
                sourcefile: path.join(root, f),
                tsconfigRaw: { compilerOptions: tsconfig.compilerOptions },
            });
            fs.mkdirSync(path.dirname(out), { recursive: true });
            // Written aside and renamed: a CLI starting at the same moment reads the old file or the new one.
            const tmp = `${out}.${process.pid}.tmp`;
            fs.writeFileSync(tmp, code);
            fs.renameSync(tmp, out);
        }
        for (const f of removed) fs.rmSync(path.join(dir, f.replace(/\.ts$/, ".js")), { force: true });
        const tmp = `${stampFile}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(now));
        fs.renameSync(tmp, stampFile);
        return dir;
    } catch (e) {
        if (process.env.DATAOPS_DEBUG) process.stderr.write(`dataops: running the TypeScript sources (the build failed: ${e.message})\n`);
        return undefined;
    }
}

/** A module of the project: compiled when the build is fresh, else its TypeScript source through tsx. */
function load(root, rel) {
    const dir = process.env.DATAOPS_NO_BUILD ? undefined : ensureBuild(root);
    if (dir) return require(path.join(dir, `${rel}.js`));
    require("tsx/cjs");
    return require(path.join(root, `${rel}.ts`));
}

module.exports = { ensureBuild, load, buildDir, sources };
