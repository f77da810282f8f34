// The statements behind components/sql.ts. Idempotent: each apply brings the object
// to the declared state whether or not it (or part of it) already exists, so an
// update interrupted halfway converges on the next run.
import { Client } from "pg";
import type { AdminConnection } from "./generated";

type Inputs = { connection: AdminConnection; kind?: string; [key: string]: unknown };

const PRIVILEGES: Record<string, readonly string[]> = {
    database: ["CONNECT", "CREATE", "TEMPORARY"],
    schema: ["CREATE", "USAGE"],
    table: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"],
    sequence: ["SELECT", "UPDATE", "USAGE"],
};

// Changing any of these makes it another object: replace rather than update.
const IDENTITY: Record<string, readonly string[]> = {
    role: ["name"],
    database: ["name", "template", "encoding", "lcCollate", "lcCtype"],
    schema: ["name", "database"],
    grant: ["database", "role", "objectType", "schema"],
    defaultPrivileges: ["database", "owner", "role", "schema", "objectType"],
};

async function withClient<T>(c: AdminConnection, database: string, fn: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({
        host: c.host,
        port: c.port,
        user: c.user,
        password: c.password,
        database,
        ssl: c.sslMode === "disable" || c.sslMode === "prefer" ? false : { rejectUnauthorized: c.sslMode.startsWith("verify") },
    });
    // A terminated session also surfaces as an 'error' event; the failed query already reports it.
    client.on("error", () => undefined);
    await client.connect();
    try {
        return await fn(client);
    } finally {
        await client.end();
    }
}

function str(v: unknown, what: string): string {
    if (typeof v !== "string" || v.length === 0) throw new Error(`${what}: expected a non-empty string, given ${JSON.stringify(v)}`);
    return v;
}

function privileges(objectType: string, list: unknown): string[] {
    const allowed = PRIVILEGES[objectType];
    if (!allowed) throw new Error(`objectType: allowed ${Object.keys(PRIVILEGES).join(" | ")}, given ${JSON.stringify(objectType)}`);
    const given = (list ?? []) as string[];
    for (const p of given) if (!allowed.includes(p)) throw new Error(`privileges: allowed for ${objectType}: ${allowed.join(", ")}; given ${JSON.stringify(p)}`);
    return given;
}

function grantee(client: Client, role: string): string {
    return role === "public" ? "PUBLIC" : client.escapeIdentifier(role);
}

function on(client: Client, i: Inputs): string {
    const type = str(i.objectType, "objectType");
    if (type === "database") return `DATABASE ${client.escapeIdentifier(str(i.database, "database"))}`;
    const schema = client.escapeIdentifier(str(i.schema, "schema"));
    if (type === "schema") return `SCHEMA ${schema}`;
    if (type === "table") return `ALL TABLES IN SCHEMA ${schema}`;
    if (type === "sequence") return `ALL SEQUENCES IN SCHEMA ${schema}`;
    throw new Error(`objectType: allowed database | schema | table | sequence, given ${JSON.stringify(type)}`);
}

async function applyRole(i: Inputs, olds?: Inputs): Promise<string> {
    const name = str(i.name, "name");
    await withClient(i.connection, "postgres", async (c) => {
        const role = c.escapeIdentifier(name);
        const exists = (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [name])).rowCount === 1;
        const login = i.login === true ? "LOGIN" : "NOLOGIN";
        const limit = typeof i.connectionLimit === "number" ? ` CONNECTION LIMIT ${Math.trunc(i.connectionLimit)}` : "";
        const password = typeof i.password === "string" ? ` PASSWORD ${c.escapeLiteral(i.password)}` : " PASSWORD NULL";
        await c.query(`${exists ? "ALTER" : "CREATE"} ROLE ${role} WITH ${login} INHERIT${limit}${password}`);
        const wanted = ((i.roles ?? []) as string[]).map((r) => str(r, "roles[]"));
        for (const r of (olds?.roles ?? []) as string[]) if (!wanted.includes(r)) await c.query(`REVOKE ${c.escapeIdentifier(r)} FROM ${role}`);
        for (const r of wanted) await c.query(`GRANT ${c.escapeIdentifier(r)} TO ${role}`);
        if (typeof i.assumeRole === "string" && i.assumeRole) await c.query(`ALTER ROLE ${role} SET role = ${c.escapeLiteral(i.assumeRole)}`);
        else await c.query(`ALTER ROLE ${role} RESET role`);
    });
    return name;
}

async function removeRole(i: Inputs): Promise<void> {
    const name = str(i.name, "name");
    // Other objects of the environment go at the same time (a database may be dropped while we
    // look), so: hand over and drop what the role owns in every database that still exists, then
    // drop the role; if a database that was still dropping held a dependent, go round again.
    for (let attempt = 1; ; attempt++) {
        const databases = await withClient(i.connection, "postgres", async (c) => {
            if ((await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [name])).rowCount === 0) return undefined;
            return (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")).rows.map((r) => r.datname);
        });
        if (databases === undefined) return;
        for (const db of databases) {
            // A role that owns tables (a loader's) cannot be dropped; hand them to the admin and drop them.
            await withClient(i.connection, db, async (c) => {
                await c.query(`REASSIGN OWNED BY ${c.escapeIdentifier(name)} TO CURRENT_USER`);
                await c.query(`DROP OWNED BY ${c.escapeIdentifier(name)}`);
            }).catch(ignore(DATABASE_GONE, TERMINATED));
        }
        try {
            await withClient(i.connection, "postgres", (c) => c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(name)}`));
            return;
        } catch (e) {
            if ((e as { code?: string }).code !== DEPENDENTS || attempt >= 5) throw e;
            await new Promise((r) => setTimeout(r, 200 * attempt));
        }
    }
}

// SQLSTATE 3D000: the database does not exist (dropped meanwhile); 57P01: our session was ended
// by a DROP DATABASE … WITH (FORCE) of the same environment; 2BP01: dependent objects still exist.
const DATABASE_GONE = "3D000";
const TERMINATED = "57P01";
const DEPENDENTS = "2BP01";

/** pg reports a session ended between two statements without a SQLSTATE. */
function sessionEnded(e: { code?: string; message?: string }): boolean {
    return e.code === TERMINATED || /not queryable|Connection terminated/i.test(e.message ?? "");
}

function ignore(...codes: string[]) {
    return (e: { code?: string; message?: string }) => {
        if (!codes.includes(e.code ?? "") && !(codes.includes(TERMINATED) && sessionEnded(e))) throw e;
    };
}

async function applyDatabase(i: Inputs): Promise<string> {
    const name = str(i.name, "name");
    await withClient(i.connection, "postgres", async (c) => {
        const db = c.escapeIdentifier(name);
        const owner = c.escapeIdentifier(str(i.owner, "owner"));
        if ((await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 0) {
            const parts = [`CREATE DATABASE ${db} OWNER ${owner}`];
            if (typeof i.template === "string") parts.push(`TEMPLATE ${c.escapeIdentifier(i.template)}`);
            if (typeof i.encoding === "string") parts.push(`ENCODING ${c.escapeLiteral(i.encoding)}`);
            if (typeof i.lcCollate === "string") parts.push(`LC_COLLATE ${c.escapeLiteral(i.lcCollate)}`);
            if (typeof i.lcCtype === "string") parts.push(`LC_CTYPE ${c.escapeLiteral(i.lcCtype)}`);
            await c.query(parts.join(" "));
        } else {
            await c.query(`ALTER DATABASE ${db} OWNER TO ${owner}`);
        }
    });
    return name;
}

async function removeDatabase(i: Inputs): Promise<void> {
    // FORCE (PostgreSQL 13+): an open session must not keep a disposable environment alive.
    await withClient(i.connection, "postgres", (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(str(i.name, "name"))} WITH (FORCE)`));
}

async function applySchema(i: Inputs): Promise<string> {
    const name = str(i.name, "name");
    const database = str(i.database, "database");
    await withClient(i.connection, database, async (c) => {
        const s = c.escapeIdentifier(name);
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
        if (typeof i.owner === "string") await c.query(`ALTER SCHEMA ${s} OWNER TO ${c.escapeIdentifier(i.owner)}`);
    });
    return `${database}.${name}`;
}

async function removeSchema(i: Inputs): Promise<void> {
    const database = str(i.database, "database");
    await withClient(i.connection, "postgres", async (c) => {
        const exists = (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).rowCount === 1;
        if (!exists) return;
        await withClient(i.connection, database, (d) => d.query(`DROP SCHEMA IF EXISTS ${d.escapeIdentifier(str(i.name, "name"))} ${i.dropCascade === true ? "CASCADE" : "RESTRICT"}`)).catch(
            ignore(DATABASE_GONE, TERMINATED),
        );
    });
}

async function applyGrant(i: Inputs, revokeOnly = false): Promise<string> {
    const database = str(i.database, "database");
    const role = str(i.role, "role");
    const type = str(i.objectType, "objectType");
    const privs = privileges(type, i.privileges);
    await withClient(i.connection, database, async (c) => {
        const target = on(c, i);
        await c.query(`REVOKE ALL ON ${target} FROM ${grantee(c, role)}`);
        if (!revokeOnly && privs.length > 0) await c.query(`GRANT ${privs.join(", ")} ON ${target} TO ${grantee(c, role)}`);
    });
    return `${database}/${role}/${type}/${i.schema ?? ""}`;
}

function defaultsTarget(c: Client, i: Inputs): string {
    const owner = c.escapeIdentifier(str(i.owner, "owner"));
    const schema = c.escapeIdentifier(str(i.schema, "schema"));
    const type = str(i.objectType, "objectType");
    if (type !== "table" && type !== "sequence") throw new Error(`objectType: allowed table | sequence, given ${JSON.stringify(type)}`);
    return `FOR ROLE ${owner} IN SCHEMA ${schema}`;
}

async function applyDefaultPrivileges(i: Inputs, revokeOnly = false): Promise<string> {
    const database = str(i.database, "database");
    const type = str(i.objectType, "objectType");
    const privs = privileges(type, i.privileges);
    const objects = type === "table" ? "TABLES" : "SEQUENCES";
    await withClient(i.connection, database, async (c) => {
        const scope = defaultsTarget(c, i);
        const role = grantee(c, str(i.role, "role"));
        await c.query(`ALTER DEFAULT PRIVILEGES ${scope} REVOKE ALL ON ${objects} FROM ${role}`);
        if (!revokeOnly && privs.length > 0) await c.query(`ALTER DEFAULT PRIVILEGES ${scope} GRANT ${privs.join(", ")} ON ${objects} TO ${role}`);
    });
    return `${database}/${i.owner}/${i.role}/${i.schema}/${type}`;
}

async function databaseExists(i: Inputs): Promise<boolean> {
    const database = str(i.database, "database");
    return withClient(i.connection, "postgres", async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).rowCount === 1);
}

async function roleExists(i: Inputs, key: string): Promise<boolean> {
    const role = str(i[key], key);
    if (role === "public") return true;
    return withClient(i.connection, "postgres", async (c) => (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role])).rowCount === 1);
}

/**
 * Statements PostgreSQL aborts because another session touched the same objects at the same
 * time: a deadlock (two DROP SCHEMA … CASCADE whose views and tables depend on each other's,
 * as dbt's staging views depend on raw tables), a serialization failure, or two changes to one
 * catalog row ("tuple concurrently updated"). The engine runs independent resources in
 * parallel, so these are expected; PostgreSQL's advice is to run the aborted work again.
 * Every operation here is idempotent, so running it again is safe.
 */
export function isConcurrencyAbort(e: { code?: string; message?: string }): boolean {
    return e.code === "40P01" || e.code === "40001" || e.code === "55P03" || /tuple concurrently (updated|deleted)/i.test(e.message ?? "");
}

async function retrying<T>(what: () => Promise<T>, attempts = 6): Promise<T> {
    for (let attempt = 1; ; attempt++) {
        try {
            return await what();
        } catch (e) {
            if (!isConcurrencyAbort(e as { code?: string }) || attempt >= attempts) throw e;
            await new Promise((r) => setTimeout(r, 50 * 2 ** attempt + Math.random() * 100));
        }
    }
}

export function apply(i: Inputs, olds: Inputs | undefined): Promise<string> {
    return retrying(() => applyOnce(i, olds));
}

export function remove(i: Inputs): Promise<void> {
    return retrying(() => removeOnce(i));
}

async function applyOnce(i: Inputs, olds: Inputs | undefined): Promise<string> {
    switch (i.kind) {
        case "role":
            return applyRole(i, olds);
        case "database":
            return applyDatabase(i);
        case "schema":
            return applySchema(i);
        case "grant":
            return applyGrant(i);
        case "defaultPrivileges":
            return applyDefaultPrivileges(i);
        default:
            throw new Error(`kind: allowed role | database | schema | grant | defaultPrivileges, given ${JSON.stringify(i.kind)}`);
    }
}

async function removeOnce(i: Inputs): Promise<void> {
    switch (i.kind) {
        case "role":
            return removeRole(i);
        case "database":
            return removeDatabase(i);
        case "schema":
            return removeSchema(i);
        // A grant on a database, schema or role that is already gone went with it.
        case "grant":
            if ((await databaseExists(i)) && (await roleExists(i, "role"))) await applyGrant(i, true).catch(ignoreMissing);
            return;
        case "defaultPrivileges":
            if ((await databaseExists(i)) && (await roleExists(i, "role")) && (await roleExists(i, "owner"))) await applyDefaultPrivileges(i, true).catch(ignoreMissing);
            return;
    }
}

// 3F000: the schema does not exist (dropped with its database's contents); 3D000: nor the database.
function ignoreMissing(e: { code?: string; message?: string }): void {
    if (e.code !== "3F000" && e.code !== DATABASE_GONE && !sessionEnded(e)) throw e;
}

export function diff(olds: Inputs, news: Inputs): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
    const keys = new Set([...Object.keys(olds), ...Object.keys(news)].filter((k) => k !== "connection"));
    const changed = [...keys].filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
    const identity = IDENTITY[String(news.kind)] ?? [];
    const replaces = changed.filter((k) => identity.includes(k) || k === "kind");
    // Same physical name: the old object must go before the new one can be created.
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
}
