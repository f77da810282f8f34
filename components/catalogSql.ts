// The `sql` engine's statements: read an environment's catalog from the server, and bring
// the server to the declared catalog (components/catalog.ts) in as few steps as PostgreSQL
// allows. Loaded by path in Pulumi's dynamic provider host (components/sql.ts).
//
// Why one session per step, and why that is safe to run beside other environments:
// PostgreSQL keeps an object's privileges in one catalog row, and two sessions that GRANT
// on the same object at the same time fail with "tuple concurrently updated" (likewise a
// role's memberships, and DROP … CASCADE on objects that depend on each other deadlocks).
// Here every statement of an environment runs in order in one session, so nothing of one
// environment races with itself; environments on one server share no object (every role,
// database and schema is theirs alone). This is the one place that serializes grants.
//
// The steps, and what a failure leaves:
//   1. roles and memberships, in one transaction on `postgres` (all or nothing);
//   2. CREATE DATABASE when missing (PostgreSQL cannot run it in a transaction);
//   3. everything inside the database, in one transaction: schemas, grants, default
//      privileges, the comment, and what removed roles owned (all or nothing);
//   4. removed roles dropped, in one transaction.
// A failure in 3 leaves the roles of 1 in place and nothing else changed; every step is
// idempotent, so the next `up` converges from wherever the last one stopped.
import {
    type Catalog,
    type Difference,
    differences,
    expectedAcl,
    type LiveAcl,
    type LiveCatalog,
    type LiveDefault,
    type LiveRole,
    type ObjectType,
    PRIVILEGES,
    type Provenance,
    schemaWriters,
} from "./catalog";
import { formatVersion, parseVersion, VersionMismatch, versionMismatch } from "../config/version";
import type { AdminConnection } from "./generated";
import { type Query, transaction, withClient } from "./pgSession";
import { type Copied, copyDatabase, prepareCopy, undoCopy } from "./copySql";

export { sameCatalog } from "./catalog";

// SQLSTATE 3D000: the database does not exist; 2BP01: dependent objects still exist.
const DATABASE_GONE = "3D000";
const DEPENDENTS = "2BP01";

/**
 * Statements PostgreSQL aborts because another session touched the same rows: a deadlock,
 * a serialization failure, a lock not available, "tuple concurrently updated". Within an
 * environment nothing runs at once any more, but a person or a tool may (a `DROP SCHEMA`
 * by hand during an update). PostgreSQL's advice is to run the work again, and every step
 * here is idempotent.
 */
export function isConcurrencyAbort(e: { code?: string; message?: string }): boolean {
    return e.code === "40P01" || e.code === "40001" || e.code === "55P03" || /tuple concurrently (updated|deleted)/i.test(e.message ?? "");
}

async function retrying<T>(what: () => Promise<T>, attempts = 5): Promise<T> {
    for (let attempt = 1; ; attempt++) {
        try {
            return await what();
        } catch (e) {
            if (!isConcurrencyAbort(e as { code?: string }) || attempt >= attempts) throw e;
            await new Promise((r) => setTimeout(r, 50 * 2 ** attempt + Math.random() * 100));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading

async function readRoles(c: Query, names: readonly string[]): Promise<Record<string, LiveRole>> {
    const rows = (
        await c.query<{ rolname: string; rolcanlogin: boolean; rolconnlimit: number; rolconfig: string[] | null; member_of: string[] }>(
            `SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolconfig,
                    array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of
               FROM pg_roles r WHERE r.rolname = ANY($1)`,
            [names],
        )
    ).rows;
    return Object.fromEntries(
        rows.map((r) => {
            const setting = (r.rolconfig ?? []).find((s) => s.startsWith("role="));
            return [r.rolname, { login: r.rolcanlogin, connectionLimit: r.rolconnlimit, memberOf: r.member_of, ...(setting ? { assumeRole: setting.slice("role=".length) } : {}) }];
        }),
    );
}

/** role (or `public`) → the privileges we manage, from an ACL exploded by aclexplode. */
function aclOf(rows: ReadonlyArray<{ grantee: string; privilege: string }>, objectType: ObjectType): Record<string, string[]> {
    const acl: Record<string, string[]> = {};
    for (const r of rows) if (PRIVILEGES[objectType].includes(r.privilege)) (acl[r.grantee] ??= []).push(r.privilege);
    for (const k of Object.keys(acl)) acl[k].sort();
    return acl;
}

type AclRow = { object: string; schema: string | null; kind: string; owner: string; grantee: string | null; privilege: string | null };

/** Everything in two round trips: one to `postgres` (roles, the database), one to the database. */
export async function readLive(conn: AdminConnection, desired: Catalog): Promise<LiveCatalog> {
    const db = desired.database.name;
    const cluster = await withClient(conn, "postgres", async (c) => {
        const database = (
            await c.query<{ owner: string; comment: string | null }>(
                "SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1",
                [db],
            )
        ).rows[0];
        return { database, roles: await readRoles(c, Object.keys(desired.roles)) };
    });
    if (!cluster.database) return { roles: cluster.roles, schemas: {}, objects: [], defaults: [] };
    const inside = await withClient(conn, db, (c) => readDatabase(c, desired));
    return {
        database: { owner: cluster.database.owner, ...(cluster.database.comment !== null ? { comment: cluster.database.comment } : {}) },
        roles: cluster.roles,
        ...inside,
    };
}

/** The part of the catalog inside the environment's database, read in the session `c` (which may be mid-transaction). */
async function readDatabase(c: Query, desired: Catalog): Promise<Pick<LiveCatalog, "schemas" | "objects" | "defaults">> {
    const roleNames = Object.keys(desired.roles);
    const schemaNames = [...new Set([...Object.keys(desired.schemas), "public"])];
    const schemas = (await c.query<{ nspname: string; owner: string }>("SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = ANY($1)", [schemaNames])).rows;
    // Every ACL entry of the database, the schemas, and the tables and sequences in them.
    // A NULL ACL means the built-in default (acldefault), which is what PostgreSQL applies.
    const acl = (
        await c.query<AclRow>(
            `WITH objects AS (
                SELECT 'database' AS kind, NULL::name AS schema, NULL::name AS name, d.datdba AS owner, coalesce(d.datacl, acldefault('d', d.datdba)) AS acl
                  FROM pg_database d WHERE d.datname = current_database()
                UNION ALL
                SELECT 'schema', n.nspname, NULL, n.nspowner, coalesce(n.nspacl, acldefault('n', n.nspowner))
                  FROM pg_namespace n WHERE n.nspname = ANY($1)
                UNION ALL
                SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname, c.relname, c.relowner,
                       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's'::"char" ELSE 'r'::"char" END, c.relowner))
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = ANY($1) AND n.nspname <> 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            )
            SELECT o.kind, o.schema, coalesce(o.name, '') AS object, pg_get_userbyid(o.owner) AS owner,
                   CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege
              FROM objects o LEFT JOIN LATERAL aclexplode(o.acl) a ON true`,
            [schemaNames],
        )
    ).rows;
    const defaults = (
        await c.query<{ owner: string; schema: string | null; kind: string; grantee: string; privilege: string }>(
            `SELECT pg_get_userbyid(d.defaclrole) AS owner, n.nspname AS schema, d.defaclobjtype AS kind,
                    CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege
               FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
              WHERE pg_get_userbyid(d.defaclrole) = ANY($1) AND d.defaclobjtype IN ('r', 'S')`,
            [roleNames],
        )
    ).rows;
    const objects = new Map<string, { o: Omit<LiveAcl, "acl">; rows: { grantee: string; privilege: string }[] }>();
    for (const r of acl) {
        const objectType = r.kind as ObjectType;
        const label = objectType === "database" ? "database" : objectType === "schema" ? `schema ${r.schema}` : `${objectType} ${r.schema}.${r.object}`;
        const entry = objects.get(label) ?? { o: { object: label, objectType, owner: r.owner, ...(r.schema !== null ? { schema: r.schema } : {}) }, rows: [] };
        if (r.grantee !== null && r.privilege !== null) entry.rows.push({ grantee: r.grantee, privilege: r.privilege });
        objects.set(label, entry);
    }
    const byScope = new Map<string, { owner: string; schema: string; objectType: "table" | "sequence"; rows: { grantee: string; privilege: string }[] }>();
    for (const d of defaults) {
        const objectType = d.kind === "S" ? "sequence" : "table";
        const scope = `${d.owner}/${d.schema ?? ""}/${objectType}`;
        const entry = byScope.get(scope) ?? { owner: d.owner, schema: d.schema ?? "", objectType, rows: [] };
        entry.rows.push({ grantee: d.grantee, privilege: d.privilege });
        byScope.set(scope, entry);
    }
    return {
        schemas: Object.fromEntries(schemas.map((s) => [s.nspname, { owner: s.owner }])),
        objects: [...objects.values()].map(({ o, rows }) => ({ ...o, acl: aclOf(rows, o.objectType) })),
        defaults: [...byScope.values()].map((d): LiveDefault => ({ owner: d.owner, schema: d.schema, objectType: d.objectType, acl: aclOf(d.rows, d.objectType) })),
    };
}

/** What differs between the declared catalog and the server (drift). */
export async function drift(conn: AdminConnection, desired: Catalog): Promise<Difference[]> {
    return differences(desired, await readLive(conn, desired));
}

// ---------------------------------------------------------------------------------------
// Applying

function grantee(c: Query, role: string): string {
    return role === "public" ? "PUBLIC" : c.escapeIdentifier(role);
}

function privilegeSql(list: readonly string[]): string {
    // Every item comes from the fixed lists in PRIVILEGES, never from config text.
    for (const p of list) if (!Object.values(PRIVILEGES).some((l) => l.includes(p))) throw new Error(`privilege: ${JSON.stringify(p)} is not one PostgreSQL grants`);
    return list.join(", ");
}

async function applyRoles(c: Query, desired: Catalog, passwords: Readonly<Record<string, string>>): Promise<void> {
    const live = await readRoles(c, Object.keys(desired.roles));
    // Group roles first: a login's memberships need them.
    const order = Object.keys(desired.roles).sort((a, b) => Number(desired.roles[a].login) - Number(desired.roles[b].login));
    for (const name of order) {
        const want = desired.roles[name];
        const role = c.escapeIdentifier(name);
        const limit = Math.trunc(want.connectionLimit ?? -1);
        const password = passwords[name];
        const attrs = `${want.login ? "LOGIN" : "NOLOGIN"} INHERIT CONNECTION LIMIT ${limit} ${password !== undefined ? `PASSWORD ${c.escapeLiteral(password)}` : "PASSWORD NULL"}`;
        await c.query(`${live[name] ? "ALTER" : "CREATE"} ROLE ${role} WITH ${attrs}`);
        const has = live[name]?.memberOf ?? [];
        for (const r of has) if (!want.memberOf.includes(r)) await c.query(`REVOKE ${c.escapeIdentifier(r)} FROM ${role}`);
        for (const r of want.memberOf) if (!has.includes(r)) await c.query(`GRANT ${c.escapeIdentifier(r)} TO ${role}`);
        if ((live[name]?.assumeRole ?? "") !== (want.assumeRole ?? "")) {
            if (want.assumeRole) await c.query(`ALTER ROLE ${role} SET role = ${c.escapeLiteral(want.assumeRole)}`);
            else await c.query(`ALTER ROLE ${role} RESET role`);
        }
    }
}

function target(c: Query, objectType: ObjectType, object: string, schema: string | undefined, database: string): string {
    if (objectType === "database") return `DATABASE ${c.escapeIdentifier(database)}`;
    if (objectType === "schema") return `SCHEMA ${c.escapeIdentifier(schema!)}`;
    const name = object.slice(object.indexOf(".") + 1);
    return `${objectType === "table" ? "TABLE" : "SEQUENCE"} ${c.escapeIdentifier(schema!)}.${c.escapeIdentifier(name)}`;
}

/** Grants and revokes until every object's ACL holds exactly what the catalog says, for the catalog's roles. */
async function applyPrivileges(c: Query, desired: Catalog, live: LiveCatalog): Promise<void> {
    const db = desired.database.name;
    const grantees = [...Object.keys(desired.roles), "public"];
    for (const o of live.objects) {
        const wanted = expectedAcl(desired, o);
        const on = target(c, o.objectType, o.object.slice(o.object.indexOf(" ") + 1), o.schema, db);
        for (const role of grantees) {
            if (role === o.owner) continue;
            const want = wanted[role] ?? [];
            const got = o.acl[role] ?? [];
            const revoke = got.filter((p) => !want.includes(p));
            const grant = want.filter((p) => !got.includes(p));
            if (revoke.length > 0) await c.query(`REVOKE ${privilegeSql(revoke)} ON ${on} FROM ${grantee(c, role)}`);
            if (grant.length > 0) await c.query(`GRANT ${privilegeSql(grant)} ON ${on} TO ${grantee(c, role)}`);
        }
    }
    const liveDefaults = new Map(live.defaults.map((d) => [`${d.owner}/${d.schema}/${d.objectType}`, d]));
    const scopes = new Set<string>([...liveDefaults.keys()]);
    for (const d of Object.values(desired.defaults)) scopes.add(`${d.owner}/${d.schema}/${d.objectType}`);
    for (const scope of scopes) {
        const [owner, schema, objectType] = scope.split("/") as [string, string, "table" | "sequence"];
        if (!(owner in desired.roles)) continue;
        const got = liveDefaults.get(scope)?.acl ?? {};
        const where = `FOR ROLE ${c.escapeIdentifier(owner)}${schema ? ` IN SCHEMA ${c.escapeIdentifier(schema)}` : ""}`;
        const objects = objectType === "table" ? "TABLES" : "SEQUENCES";
        for (const role of grantees) {
            const want = Object.values(desired.defaults).find((d) => d.owner === owner && d.schema === schema && d.objectType === objectType && d.role === role)?.privileges ?? [];
            const has = got[role] ?? [];
            const revoke = has.filter((p) => !want.includes(p));
            const grant = want.filter((p) => !has.includes(p));
            if (revoke.length > 0) await c.query(`ALTER DEFAULT PRIVILEGES ${where} REVOKE ${privilegeSql(revoke)} ON ${objects} FROM ${grantee(c, role)}`);
            if (grant.length > 0) await c.query(`ALTER DEFAULT PRIVILEGES ${where} GRANT ${privilegeSql(grant)} ON ${objects} TO ${grantee(c, role)}`);
        }
    }
}

/**
 * What removed roles owned in the environment's database stays in the environment: a table in a
 * schema that another loader now writes goes to that loader (a renamed loader keeps its rows and
 * can go on writing them); everything else goes to the environment's owner role. Then their
 * privileges go, so the roles can be dropped.
 */
async function handOver(c: Query, desired: Catalog, removed: readonly string[]): Promise<void> {
    if (removed.length === 0) return;
    const present = (await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [removed])).rows.map((r) => r.rolname);
    for (const role of present) {
        const owned = (
            await c.query<{ schema: string; name: string; kind: string }>(
                `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
                [role],
            )
        ).rows;
        for (const t of owned) {
            const writer = schemaWriters(desired, t.schema).find((r) => desired.roles[r].login);
            if (!writer) continue;
            const kind = t.kind === "v" ? "VIEW" : t.kind === "m" ? "MATERIALIZED VIEW" : t.kind === "f" ? "FOREIGN TABLE" : "TABLE";
            await c.query(`ALTER ${kind} ${c.escapeIdentifier(t.schema)}.${c.escapeIdentifier(t.name)} OWNER TO ${c.escapeIdentifier(writer)}`);
        }
        await c.query(`REASSIGN OWNED BY ${c.escapeIdentifier(role)} TO ${c.escapeIdentifier(desired.database.owner)}`);
        await c.query(`DROP OWNED BY ${c.escapeIdentifier(role)}`);
    }
}

/** Roles dropped in one transaction; one that still owns something in another database is handed over there first. */
async function dropRoles(conn: AdminConnection, roles: readonly string[], heir: string | undefined): Promise<void> {
    if (roles.length === 0) return;
    const drop = () =>
        withClient(conn, "postgres", (c) =>
            transaction(c, async () => {
                for (const r of roles) await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(r)}`);
            }),
        );
    try {
        await drop();
    } catch (e) {
        if ((e as { code?: string }).code !== DEPENDENTS) throw e;
        const databases = await withClient(conn, "postgres", async (c) => (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")).rows.map((r) => r.datname));
        for (const db of databases) {
            await withClient(conn, db, async (c) => {
                const present = (await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [roles])).rows.map((r) => r.rolname);
                const to = heir && (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [heir])).rowCount === 1 ? c.escapeIdentifier(heir) : "CURRENT_USER";
                for (const r of present) {
                    await c.query(`REASSIGN OWNED BY ${c.escapeIdentifier(r)} TO ${to}`);
                    await c.query(`DROP OWNED BY ${c.escapeIdentifier(r)}`);
                }
            }).catch((err: { code?: string }) => {
                if (err.code !== DATABASE_GONE) throw err;
            });
        }
        await drop();
    }
}

export async function databaseExists(conn: AdminConnection, name: string): Promise<boolean> {
    return withClient(conn, "postgres", async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1);
}

/** The server's version, checked against the pin before anything changes; returns it as MAJOR.MINOR. */
export async function checkServerVersion(conn: AdminConnection, pinned: string | undefined, opts: { readonly connectTimeoutMs?: number } = {}): Promise<string> {
    const num = await withClient(conn, "postgres", async (c) => (await c.query<{ server_version_num: string }>("SHOW server_version_num")).rows[0].server_version_num, opts);
    const running = parseVersion(num);
    const problem = pinned ? versionMismatch(pinned, running, `the server at ${conn.host}:${conn.port}`) : undefined;
    if (problem) throw new VersionMismatch(problem);
    return formatVersion(running);
}

/**
 * An environment's objects and data live on the server it was made on. Pointing its config at
 * another server (another embedded major, another shared host) is not an update: applying
 * there would make an empty twin and leave the data behind. Refused, with the way forward.
 */
export function serverMoved(from: AdminConnection | undefined, to: AdminConnection): string | undefined {
    if (!from || (from.host === to.host && Number(from.port) === Number(to.port))) return undefined;
    return (
        `the environment's objects and data are on the server ${from.host}:${from.port}, but its config now names ${to.host}:${to.port}. ` +
        "An environment does not move between servers (a new PostgreSQL major is a new server): destroy it and bring it up again on the new server " +
        "(dataops destroy, then dataops up), or point it back at its server"
    );
}

/**
 * Brings the server to `desired`. `previous` is what the last successful apply declared: roles
 * and schemas it had and `desired` has not are removed (a removed schema with what it holds).
 * Returns where the data came from when the database was made as a copy (components/copySql.ts).
 */
export async function applyCatalog(conn: AdminConnection, desired: Catalog, passwords: Readonly<Record<string, string>>, previous?: Catalog): Promise<Provenance | undefined> {
    const db = desired.database;
    const removedRoles = Object.keys(previous?.roles ?? {}).filter((r) => !(r in desired.roles));
    const removedSchemas = Object.keys(previous?.schemas ?? {}).filter((s) => !(s in desired.schemas));

    await retrying(() => withClient(conn, "postgres", (c) => transaction(c, () => applyRoles(c, desired, passwords))));

    // A branch that starts from another database's data copies it once, when its database is made.
    let copied: Copied | undefined;
    if (!(await databaseExists(conn, db.name))) {
        if (db.copy) copied = await copyDatabase(conn, desired);
        else
            await withClient(conn, "postgres", (c) =>
                c.query(`CREATE DATABASE ${c.escapeIdentifier(db.name)} OWNER ${c.escapeIdentifier(db.owner)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`),
            );
    }

    let provenance: Provenance | undefined;
    try {
        await retrying(() =>
            withClient(conn, db.name, (c) =>
                transaction(c, async () => {
                    await c.query(`ALTER DATABASE ${c.escapeIdentifier(db.name)} OWNER TO ${c.escapeIdentifier(db.owner)}`);
                    if (db.comment !== undefined) await c.query(`COMMENT ON DATABASE ${c.escapeIdentifier(db.name)} IS ${c.escapeLiteral(db.comment)}`);
                    for (const s of removedSchemas) await c.query(`DROP SCHEMA IF EXISTS ${c.escapeIdentifier(s)} CASCADE`);
                    for (const [name, s] of Object.entries(desired.schemas)) {
                        await c.query(`CREATE SCHEMA IF NOT EXISTS ${c.escapeIdentifier(name)}`);
                        await c.query(`ALTER SCHEMA ${c.escapeIdentifier(name)} OWNER TO ${c.escapeIdentifier(s.owner)}`);
                    }
                    if (copied) provenance = await prepareCopy(c, desired, copied);
                    await handOver(c, desired, removedRoles);
                    await applyPrivileges(c, desired, { roles: {}, ...(await readDatabase(c, desired)) });
                }),
            ),
        );
    } catch (e) {
        // Never leave a copy that was not made the branch's own: the next up copies again.
        if (copied) await undoCopy(conn, desired).catch(() => undefined);
        throw e;
    }

    await dropRoles(conn, removedRoles, db.owner);
    return provenance;
}

/** Removes everything the catalog declared: the database (open sessions are ended) and its roles. */
export async function dropCatalog(conn: AdminConnection, previous: Catalog): Promise<void> {
    // FORCE (PostgreSQL 13+): an open session must not keep a disposable environment alive.
    await withClient(conn, "postgres", (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(previous.database.name)} WITH (FORCE)`));
    await dropRoles(conn, Object.keys(previous.roles), undefined);
}
