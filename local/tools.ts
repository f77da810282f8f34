// The Python tools a data team runs in an environment (dbt, a Singer tap and target),
// installed from PyPI into one venv each under .dataops/tools/, pinned in
// tools/python.json. A stamp records what was installed, so a later run costs one
// file read, and a changed pin reinstalls.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { localDir } from "./embedded";

export interface ToolPin {
    readonly requirements: readonly string[];
    readonly executable: string;
}

interface Pins {
    readonly python: { readonly minimum: string };
    readonly tools: Readonly<Record<string, ToolPin>>;
}

export function toolPins(root: string): Pins {
    return JSON.parse(readFileSync(join(root, "tools", "python.json"), "utf8")) as Pins;
}

export function toolsDir(root: string): string {
    return join(localDir(root), "tools");
}

/** The python3 to build venvs with: $DATAOPS_PYTHON, else python3; refused below the pinned minimum. */
export function findPython(minimum: string, env: NodeJS.ProcessEnv = process.env): string {
    const python = env.DATAOPS_PYTHON || "python3";
    const r = spawnSync(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8", timeout: 30_000 });
    if (r.error || r.status !== 0)
        throw new Error(`the Python tools need ${python} ${minimum} or later, and it could not be run (${r.error?.message ?? r.stderr.trim()}); install Python, or set DATAOPS_PYTHON to one`);
    const version = r.stdout.trim();
    const [major, minor] = version.split(".").map(Number);
    const [wantMajor, wantMinor] = minimum.split(".").map(Number);
    if (major < wantMajor || (major === wantMajor && minor < wantMinor))
        throw new Error(`the Python tools need Python ${minimum} or later; ${python} is ${version} (set DATAOPS_PYTHON to a newer one)`);
    return python;
}

/**
 * Runs an installing command, keeping the tail of its output for the error and saying every
 * 20 s that it is still at work; ended after `timeoutMs` when given. Also used by the tests'
 * own tool installs (test/support/ciTools.ts).
 */
export function runLogged(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }, log: (line: string) => void): Promise<void> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
        let tail = "";
        const keep = (b: Buffer) => {
            tail = (tail + b.toString()).slice(-4000);
        };
        child.stdout.on("data", keep);
        child.stderr.on("data", keep);
        const started = Date.now();
        const ticker = setInterval(() => log(`  still installing: ${Math.round((Date.now() - started) / 1000)}s`), 20_000);
        const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs);
        const done = (e?: Error) => {
            clearInterval(ticker);
            clearTimeout(timer);
            if (e) reject(e);
            else resolve();
        };
        child.on("error", (e) => done(new Error(`${cmd} could not be started: ${e.message}`)));
        child.on("close", (code, signal) => done(code === 0 ? undefined : new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal}:\n${tail.trim()}`)));
    });
}

/**
 * The path of a pinned tool's executable, installing it first when its venv is missing or
 * was made from other pins. The stamp is written last, so an interrupted install is never
 * taken for a finished one: without its stamp the venv is removed and made again.
 */
export async function ensureTool(root: string, name: string, log: (line: string) => void = () => undefined): Promise<string> {
    const pins = toolPins(root);
    const pin = pins.tools[name];
    if (!pin) throw new Error(`no Python tool named ${name} in tools/python.json (known: ${Object.keys(pins.tools).join(", ")})`);
    const dir = join(toolsDir(root), name);
    const bin = join(dir, "bin", pin.executable);
    const stampFile = join(dir, ".dataops-tool.json");
    const stamp = JSON.stringify({ requirements: pin.requirements });
    if (existsSync(bin) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return bin;

    const python = findPython(pins.python.minimum);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(toolsDir(root), { recursive: true });
    log(`python tools: installing ${name} (${pin.requirements.join(", ")}) into .dataops/tools/${name}; only the first run is slow`);
    try {
        await runLogged(python, ["-m", "venv", dir], {}, log);
        await runLogged(join(dir, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", ...pin.requirements], {}, log);
    } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`python tools: installing ${name} failed: ${(e as Error).message}`);
    }
    writeFileSync(stampFile, stamp);
    log(`python tools: ${name} installed`);
    return bin;
}
