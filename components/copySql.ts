// A branch that starts from another database's data (`branches.data: schema | sample | clone`).
// The copy is made once, when the branch's database is created, and made the branch's own
// before anyone can use it:
//
//   1. copyDatabase: `CREATE DATABASE … TEMPLATE source` on a shared server. PostgreSQL
//      copies a database only while no one else is connected to it, so the copy waits for the
//      source's sessions to end, up to `branches.copyWaitSeconds`, then fails naming the
//      database and what to do. It never ends anyone's session. On a cloned cluster (Aurora
//      copy-on-write, `via: rename`), production's database is renamed to the branch's, and
//      every login the branch does not declare is disabled: the clone arrived with
//      production's roles and their passwords.
//   2. prepareCopy, inside the copy, in the same transaction as the rest of the environment's
//      objects (components/catalogSql.ts):
//      - `schema` empties every table; `sample` keeps a bounded sample of each raw table;
//      - what the source's roles owned goes to the branch's corresponding role (loader to
//        loader, transformer to transformer, owner to owner), by name; an object of a role the
//        branch does not have goes to the role that writes its schema, else to the owner;
//      - every privilege and default privilege the source's roles had in the copy is revoked,
//        so they get nothing here; the branch's own grants follow as for a new environment;
//      - nothing of the source's roles may remain: that is checked, and the copy is refused
//        otherwise.
//   If anything in 2 fails, the copy is undone (dropped, or renamed back), so the next `up`
//   copies again instead of finding a half-prepared database.
//
// Nothing here touches the source or a shared object: every statement after the copy runs
// connected to the copy. (That is why there is no REASSIGN OWNED or DROP OWNED: they also
// reassign the source's databases and revoke its roles' privileges on them.)
import { type Catalog, type CopySpec, type Provenance, schemaWriters } from "./catalog";
import type { AdminConnection } from "./generated";
import { type Query, transaction, withClient } from "./pgSession";

/** The copy failed for a reason the user can act on; the message names the key and the next step. */
export class CopyRefused extends Error {}

// SQLSTATE 55006: object in use (another session is connected to the template); 3D000: no such database.
const IN_USE = "55006";
const NO_DATABASE = "3D000";

/** What step 1 learned about the source, for step 2. */
export interface Copied {
    readonly spec: CopySpec;
    /** Who owned the source database: its environment's owner role, which gives the source's role prefix. */
    readonly sourceOwner: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Step 1: the branch's database, made from `spec.from`. */
export async function copyDatabase(conn: AdminConnection, desired: Catalog, now: () => number = Date.now): Promise<Copied> {
    const db = desired.database;
    const spec = db.copy!;
    const where = `${conn.host}:${conn.port}`;
    return withClient(conn, "postgres", async (c) => {
        const owner = (await c.query<{ owner: string }>("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1", [spec.from])).rows[0]?.owner;
        if (owner === undefined)
            throw new CopyRefused(
                spec.via === "rename"
                    ? `branches.data: the cluster cloned from ${spec.cluster ?? "production"} has no database "${spec.from}" (production's database) to start the branch from`
                    : `branches.templateDatabase: there is no database "${spec.from}" on the server ${where} (the database a branch copies for data mode ${spec.mode})`,
            );
        if (spec.via === "rename") {
            await transaction(c, async () => {
                await disableOtherLogins(c, desired);
                await c.query(`ALTER DATABASE ${c.escapeIdentifier(spec.from)} RENAME TO ${c.escapeIdentifier(db.name)}`);
                await c.query(`ALTER DATABASE ${c.escapeIdentifier(db.name)} OWNER TO ${c.escapeIdentifier(db.owner)}`);
            });
            return { spec, sourceOwner: owner };
        }
        const deadline = now() + spec.waitSeconds * 1000;
        for (;;) {
            try {
                await c.query(`CREATE DATABASE ${c.escapeIdentifier(db.name)} OWNER ${c.escapeIdentifier(db.owner)} TEMPLATE ${c.escapeIdentifier(spec.from)}`);
                return { spec, sourceOwner: owner };
            } catch (e) {
                const code = (e as { code?: string }).code;
                if (code === NO_DATABASE) throw new CopyRefused(`branches.templateDatabase: there is no database "${spec.from}" on the server ${where}`);
                if (code !== IN_USE) throw e;
                if (now() >= deadline) {
                    const s = (
                        await c.query<{ n: number; users: string[] }>(
                            "SELECT count(*)::int AS n, coalesce(array_agg(DISTINCT usename::text) FILTER (WHERE usename IS NOT NULL), '{}') AS users FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                            [spec.from],
                        )
                    ).rows[0];
                    throw new CopyRefused(
                        `branches.templateDatabase: "${spec.from}" on ${where} had ${s.n} other session(s) open (users: ${s.users.join(", ") || "unknown"}) for the ${spec.waitSeconds}s the copy waits (branches.copyWaitSeconds). ` +
                            "PostgreSQL copies a database only while no one else is connected to it, and dataops never ends anyone's session. " +
                            "Copy from a database nobody connects to instead (for example a nightly snapshot of production, made with CREATE DATABASE … TEMPLATE, named in branches.templateDatabase), or raise branches.copyWaitSeconds; then run up again.",
                    );
                }
                await sleep(Math.min(1000, Math.max(50, deadline - now())));
            }
        }
    });
}

/** A copy whose preparation failed is taken back, so the next `up` starts over. */
export async function undoCopy(conn: AdminConnection, desired: Catalog): Promise<void> {
    const db = desired.database;
    await withClient(conn, "postgres", (c) =>
        db.copy?.via === "rename"
            ? c.query(`ALTER DATABASE ${c.escapeIdentifier(db.name)} RENAME TO ${c.escapeIdentifier(db.copy.from)}`)
            : c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(db.name)} WITH (FORCE)`),
    );
}

/**
 * A cloned cluster arrives with production's roles and their passwords. Every role that can log
 * in and that the branch does not declare loses its login and its password; the branch's own
 * roles get the branch's generated passwords (components/catalogSql.ts, applyRoles). Superusers
 * (on RDS, the cloud's own `rdsadmin`) and the admin this runs as are left alone.
 */
export async function disableOtherLogins(c: Query, desired: Catalog): Promise<string[]> {
    const others = (
        await c.query<{ rolname: string }>(
            `SELECT rolname FROM pg_roles
              WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user AND rolname !~ '^pg_' AND NOT (rolname = ANY($1))
              ORDER BY rolname`,
            [Object.keys(desired.roles)],
        )
    ).rows.map((r) => r.rolname);
    for (const r of others) await c.query(`ALTER ROLE ${c.escapeIdentifier(r)} NOLOGIN PASSWORD NULL`);
    return others;
}

// pg_identify_object's type → the keyword ALTER … OWNER TO and GRANT/REVOKE … ON take.
const OWNER_KEYWORD: Readonly<Record<string, string>> = {
    table: "TABLE",
    view: "VIEW",
    "materialized view": "MATERIALIZED VIEW",
    sequence: "SEQUENCE",
    "foreign table": "FOREIGN TABLE",
    function: "FUNCTION",
    procedure: "PROCEDURE",
    aggregate: "AGGREGATE",
    schema: "SCHEMA",
    type: "TYPE",
    "composite type": "TYPE",
    domain: "DOMAIN",
    collation: "COLLATION",
    conversion: "CONVERSION",
    "statistics object": "STATISTICS",
    "text search configuration": "TEXT SEARCH CONFIGURATION",
    "text search dictionary": "TEXT SEARCH DICTIONARY",
};
const ACL_KEYWORD: Readonly<Record<string, string>> = {
    table: "TABLE",
    view: "TABLE",
    "materialized view": "TABLE",
    "foreign table": "TABLE",
    sequence: "SEQUENCE",
    function: "ROUTINE",
    procedure: "ROUTINE",
    aggregate: "ROUTINE",
    schema: "SCHEMA",
    type: "TYPE",
    "composite type": "TYPE",
    domain: "TYPE",
};
const DEFAULT_KEYWORD: Readonly<Record<string, string>> = { r: "TABLES", S: "SEQUENCES", f: "FUNCTIONS", T: "TYPES", n: "SCHEMAS" };

// The objects of this database that a role owns ('o') or is granted on ('a'), from
// pg_shdepend: the same list REASSIGN OWNED and DROP OWNED work from, restricted to this
// database (dbid), so shared objects never appear. Identities come quoted from PostgreSQL.
const DEPENDENTS = `
    SELECT r.rolname AS role, d.deptype AS kind, d.objsubid AS column_number, o.type, o.schema, o.identity,
           (SELECT quote_ident(attname) FROM pg_attribute WHERE d.objsubid > 0 AND attrelid = d.objid AND attnum = d.objsubid) AS column_name,
           t.identity AS parent,
           -- A sequence owned by a column changes owner with its table.
           (d.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass AND x.objid = d.objid
                AND x.refclassid = 'pg_class'::regclass AND x.deptype IN ('a', 'i'))) AS follows_table
      FROM pg_shdepend d
      JOIN pg_roles r ON r.oid = d.refobjid
      CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
      CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, 0) t
     WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND d.refclassid = 'pg_authid'::regclass AND d.deptype IN ('o', 'a') AND r.rolname = ANY($1)
     ORDER BY o.type <> 'schema', o.identity`;

interface Dependent {
    role: string;
    kind: "o" | "a";
    column_number: number;
    type: string;
    schema: string | null;
    identity: string;
    column_name: string | null;
    parent: string;
    follows_table: boolean;
}

/** Roles that own or are granted anything in this database and that the branch does not declare. */
async function sourceRoles(c: Query, desired: Catalog): Promise<string[]> {
    return (
        await c.query<{ rolname: string }>(
            `SELECT DISTINCT r.rolname FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
              WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND d.refclassid = 'pg_authid'::regclass
                AND d.deptype IN ('o', 'a') AND NOT r.rolsuper AND r.rolname <> current_user AND r.rolname !~ '^pg_' AND NOT (r.rolname = ANY($1))
              ORDER BY 1`,
            [Object.keys(desired.roles)],
        )
    ).rows.map((r) => r.rolname);
}

/** The branch's role that takes over what `role` (a role of the source) owned. */
export function heirOf(desired: Catalog, sourceOwner: string, role: string, schema: string | null): string {
    const strip = (owner: string) => (owner.endsWith("_owner") ? owner.slice(0, -"owner".length) : undefined);
    const from = strip(sourceOwner);
    const to = strip(desired.database.owner);
    if (from && to && role.startsWith(from)) {
        const mapped = to + role.slice(from.length);
        if (mapped in desired.roles) return mapped;
    }
    if (schema) {
        // The role that writes the schema: a loader (it logs in) before a functional role.
        const writer = schemaWriters(desired, schema)[0];
        if (writer) return writer;
    }
    return desired.database.owner;
}

/** Step 2, inside the copy and its transaction. Returns the record of the copy. */
export async function prepareCopy(c: Query, desired: Catalog, copied: Copied, at: Date = new Date()): Promise<Provenance> {
    const spec = copied.spec;
    const tables = (
        await c.query<{ oid: number; name: string; schema: string; relkind: string }>(
            `SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, n.nspname AS schema, c.relkind
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
                AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
              ORDER BY 2`,
        )
    ).rows;
    const plain = tables.filter((t) => t.relkind !== "m");
    let rows = 0;
    if (spec.mode === "clone") {
        rows = (await c.query<{ n: number }>("SELECT coalesce(sum(greatest(reltuples, 0)), 0)::float8 AS n FROM pg_class WHERE oid = ANY($1) AND relkind = 'r'", [plain.map((t) => t.oid)])).rows[0].n;
    } else {
        rows = await emptyTables(c, spec, tables);
    }
    for (const role of await sourceRoles(c, desired)) await takeOver(c, desired, copied, role);
    await stripDefaults(c, desired);
    const left = await sourceRoles(c, desired);
    if (left.length > 0) {
        const what = (await c.query<Dependent>(DEPENDENTS, [left])).rows.map((d) => `${d.type} ${d.identity} (${d.kind === "o" ? "owned by" : "granted to"} ${d.role})`);
        throw new Error(`branches.data: the copy of "${spec.from}" still gives roles the branch does not have a hold on ${what.join(", ") || left.join(", ")}; the copy was taken back`);
    }
    return {
        mode: spec.mode,
        from: spec.from,
        ...(spec.cluster ? { cluster: spec.cluster } : {}),
        at: at.toISOString(),
        tables: plain.filter((t) => t.relkind === "r" || t.relkind === "p").length,
        rows: Math.round(rows),
        rowsEstimated: spec.mode === "clone",
    };
}

/**
 * `schema`: every table emptied, every materialized view unpopulated. `sample`: the same, but
 * each table of a raw schema keeps at most `rows` of its rows (the first PostgreSQL returns),
 * or about `percent` of them (TABLESAMPLE BERNOULLI). The sample is put back with triggers and
 * foreign keys off (session_replication_role), so rows whose parent was left out stay: foreign
 * keys between raw tables are not guaranteed to hold. Returns the rows kept.
 */
async function emptyTables(c: Query, spec: CopySpec, tables: ReadonlyArray<{ oid: number; name: string; schema: string; relkind: string }>): Promise<number> {
    const sampled: Array<{ oid: number; name: string; keep: string }> = [];
    if (spec.mode === "sample") {
        const of = (t: { name: string }) => (spec.sample?.percent !== undefined ? `${t.name} TABLESAMPLE BERNOULLI (${Number(spec.sample.percent)})` : `${t.name} LIMIT ${Math.trunc(spec.sample?.rows ?? 1000)}`);
        for (const [i, t] of tables.filter((t) => t.relkind === "r" && spec.rawSchemas.includes(t.schema)).entries()) {
            const keep = `pg_temp.dataops_sample_${i}`;
            // ONLY: a partition is sampled on its own, never again through its parent.
            await c.query(`CREATE TEMPORARY TABLE dataops_sample_${i} ON COMMIT DROP AS SELECT * FROM ONLY ${of(t)}`);
            sampled.push({ oid: t.oid, name: t.name, keep });
        }
    }
    const emptied = tables.filter((t) => t.relkind !== "m").map((t) => t.name);
    if (emptied.length > 0) await c.query(`TRUNCATE ${emptied.join(", ")}`);
    for (const m of tables.filter((t) => t.relkind === "m")) await c.query(`REFRESH MATERIALIZED VIEW ${m.name} WITH NO DATA`);
    let kept = 0;
    if (sampled.length > 0) {
        await c.query("SET LOCAL session_replication_role = replica");
        for (const s of sampled) {
            const cols = (
                await c.query<{ col: string }>("SELECT quote_ident(attname) AS col FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", [s.oid])
            ).rows.map((r) => r.col);
            const list = cols.join(", ");
            kept += (await c.query(`INSERT INTO ${s.name} (${list}) OVERRIDING SYSTEM VALUE SELECT ${list} FROM ${s.keep}`)).rowCount ?? 0;
        }
        await c.query("SET LOCAL session_replication_role = origin");
    }
    return kept;
}

/** What `role` owned goes to its heir in the branch; what it was granted is revoked. */
async function takeOver(c: Query, desired: Catalog, copied: Copied, role: string): Promise<void> {
    const deps = (await c.query<Dependent>(DEPENDENTS, [[role]])).rows;
    const quoted = c.escapeIdentifier(role);
    for (const d of deps.filter((d) => d.kind === "o" && !d.follows_table)) {
        const keyword = OWNER_KEYWORD[d.type];
        if (!keyword) continue; // left for the final check, which names it
        const heir = heirOf(desired, copied.sourceOwner, role, d.type === "schema" ? d.identity.replace(/^"|"$/g, "") : d.schema);
        await c.query(`ALTER ${keyword} ${d.identity} OWNER TO ${c.escapeIdentifier(heir)}`);
    }
    for (const d of deps.filter((d) => d.kind === "a")) {
        const keyword = ACL_KEYWORD[d.column_number > 0 ? "table" : d.type];
        if (!keyword) continue;
        if (d.column_number > 0) await c.query(`REVOKE ALL (${d.column_name}) ON TABLE ${d.parent} FROM ${quoted}`);
        else await c.query(`REVOKE ALL ON ${keyword} ${d.identity} FROM ${quoted}`);
    }
}

/** Default privileges set by or for roles the branch does not have are revoked. */
async function stripDefaults(c: Query, desired: Catalog): Promise<void> {
    const rows = (
        await c.query<{ owner: string; schema: string | null; kind: string; grantee: string | null }>(
            `SELECT pg_get_userbyid(d.defaclrole) AS owner, n.nspname AS schema, d.defaclobjtype AS kind,
                    CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee
               FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
              CROSS JOIN LATERAL aclexplode(d.defaclacl) a
              -- In a schema the default is no privileges at all; database-wide, the owner's own are the default.
              WHERE a.grantee <> d.defaclrole OR d.defaclnamespace <> 0`,
        )
    ).rows;
    const ours = (r: string | null) => r !== null && r in desired.roles;
    const done = new Set<string>();
    for (const r of rows) {
        if (ours(r.owner) && (r.grantee === null || ours(r.grantee))) continue;
        const key = `${r.owner}|${r.schema}|${r.kind}|${r.grantee}`;
        if (done.has(key)) continue;
        done.add(key);
        const schema = r.schema ? ` IN SCHEMA ${c.escapeIdentifier(r.schema)}` : "";
        const grantee = r.grantee === null ? "PUBLIC" : c.escapeIdentifier(r.grantee);
        await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${c.escapeIdentifier(r.owner)}${schema} REVOKE ALL ON ${DEFAULT_KEYWORD[r.kind]} FROM ${grantee}`);
    }
}
