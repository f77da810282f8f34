// An environment's objects inside PostgreSQL, as data: the roles, the database, the
// schemas, the grants and the default privileges that the components declare. The `sql`
// engine reconciles the whole catalog at once (components/catalogSql.ts); drift is the
// difference between this data and what the server's catalogs say (`differences`).
// Pure: no Pulumi, no database, so tests and the audit can use it as it is.

export type ObjectType = "database" | "schema" | "table" | "sequence";

/** What PostgreSQL can grant on each kind of object, in the order `aclexplode` names them. */
export const PRIVILEGES: Readonly<Record<ObjectType, readonly string[]>> = {
    database: ["CONNECT", "CREATE", "TEMPORARY"],
    schema: ["CREATE", "USAGE"],
    table: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"],
    sequence: ["SELECT", "UPDATE", "USAGE"],
};

export interface RoleSpec {
    readonly login: boolean;
    readonly connectionLimit?: number;
    /** Roles it is a member of (physical names), sorted. */
    readonly memberOf: readonly string[];
    /** `ALTER ROLE … SET role`: the role a login switches to, so what it creates belongs to that role. */
    readonly assumeRole?: string;
}

export interface GrantSpec {
    /** Physical role name, or `public`. */
    readonly role: string;
    readonly objectType: ObjectType;
    /** For schema, table and sequence grants: the schema (tables and sequences: all of those in it). */
    readonly schema?: string;
    readonly privileges: readonly string[];
}

export interface DefaultSpec {
    /** The role whose future tables get the privileges. */
    readonly owner: string;
    readonly role: string;
    readonly schema: string;
    readonly objectType: "table" | "sequence";
    readonly privileges: readonly string[];
}

/**
 * How a branch's database starts from another's data (`branches.data`), done once, when the
 * database is created. See components/catalogSql.ts (`copyDatabase`, `prepareCopy`).
 */
export interface CopySpec {
    /** `schema`: the objects, no rows; `sample`: that, plus a bounded sample of each raw table; `clone`: all rows. */
    readonly mode: "schema" | "sample" | "clone";
    /** The database copied. */
    readonly from: string;
    /**
     * `template`: CREATE DATABASE … TEMPLATE on a shared server. `rename`: on a cloned cluster
     * (Aurora copy-on-write), production's database takes the branch's name, and every role
     * the branch does not declare loses its login.
     */
    readonly via: "template" | "rename";
    /** The loaders' raw schemas: `sample` keeps rows of their tables only. */
    readonly rawSchemas: readonly string[];
    /** `sample`: at most `rows` of each raw table, or about `percent` of them. */
    readonly sample?: { readonly rows?: number; readonly percent?: number };
    /** How long a template copy waits for the source's other sessions to end. */
    readonly waitSeconds: number;
    /** `rename`: the cluster the branch's cluster was cloned from (for the record). */
    readonly cluster?: string;
}

/** Where a copied environment's data came from: the summary and `dataops ls` show it. */
export interface Provenance {
    readonly mode: CopySpec["mode"];
    readonly from: string;
    readonly cluster?: string;
    /** When the copy was made (ISO 8601). */
    readonly at: string;
    /** Tables in the copy. */
    readonly tables: number;
    /** Rows in the copy: exact for `schema` and `sample`; PostgreSQL's estimate for `clone` (`rowsEstimated`). */
    readonly rows: number;
    readonly rowsEstimated: boolean;
}

export interface Catalog {
    readonly database: { readonly name: string; readonly owner: string; readonly comment?: string; readonly copy?: CopySpec };
    readonly roles: Readonly<Record<string, RoleSpec>>;
    /** Schema name → owner. Removing a schema drops it with what it holds. */
    readonly schemas: Readonly<Record<string, { readonly owner: string }>>;
    readonly grants: Readonly<Record<string, GrantSpec>>;
    readonly defaults: Readonly<Record<string, DefaultSpec>>;
}

/** Roles of the catalog that may create in `schema` (CREATE on it): loaders, which log in, first. */
export function schemaWriters(desired: Catalog, schema: string): string[] {
    const writers = Object.values(desired.grants)
        .filter((g) => g.objectType === "schema" && g.schema === schema && g.privileges.includes("CREATE") && g.role in desired.roles)
        .map((g) => g.role);
    return [...writers.filter((r) => desired.roles[r].login), ...writers.filter((r) => !desired.roles[r].login)];
}

/** Stable keys: a plan or a drift report names each object by them. */
export function grantKey(g: Pick<GrantSpec, "role" | "objectType" | "schema">, database: string): string {
    return `${g.objectType} ${g.objectType === "database" ? database : g.schema} to ${g.role}`;
}

export function defaultKey(d: Pick<DefaultSpec, "owner" | "role" | "schema" | "objectType">): string {
    return `future ${d.objectType}s of ${d.owner} in ${d.schema} to ${d.role}`;
}

/** Validates one privilege list against the fixed list for its object type, and sorts it. */
export function privilegeList(objectType: string, given: unknown): string[] {
    const allowed = PRIVILEGES[objectType as ObjectType];
    if (!allowed) throw new Error(`objectType: allowed ${Object.keys(PRIVILEGES).join(" | ")}, given ${JSON.stringify(objectType)}`);
    const list = (given ?? []) as unknown[];
    if (!Array.isArray(list)) throw new Error(`privileges: expected a list, given ${JSON.stringify(given)}`);
    for (const p of list) if (!allowed.includes(p as string)) throw new Error(`privileges: allowed for ${objectType}: ${allowed.join(", ")}; given ${JSON.stringify(p)}`);
    return [...new Set(list as string[])].sort();
}

// ---------------------------------------------------------------------------------------
// What the server holds, read from its catalogs (components/catalogSql.ts fills this in).

export interface LiveRole {
    readonly login: boolean;
    readonly connectionLimit: number;
    readonly memberOf: readonly string[];
    readonly assumeRole?: string;
}

/** A privilege set held by `role` on one object; absent = none. */
export interface LiveAcl {
    /** `database`, `schema s`, `table s.t`, `sequence s.q`. */
    readonly object: string;
    readonly objectType: ObjectType;
    readonly schema?: string;
    /** The object's owner: it holds every privilege implicitly, so it is never compared. */
    readonly owner: string;
    /** role (or `public`) → privileges, only the ones we manage. */
    readonly acl: Readonly<Record<string, readonly string[]>>;
}

export interface LiveDefault {
    readonly owner: string;
    readonly schema: string;
    readonly objectType: "table" | "sequence";
    readonly acl: Readonly<Record<string, readonly string[]>>;
}

export interface LiveCatalog {
    readonly database?: { readonly owner: string; readonly comment?: string };
    readonly roles: Readonly<Record<string, LiveRole>>;
    readonly schemas: Readonly<Record<string, { readonly owner: string }>>;
    /** The database, the catalog's schemas (and `public`), and every table and sequence in them. */
    readonly objects: readonly LiveAcl[];
    readonly defaults: readonly LiveDefault[];
}

/** One difference between the declared catalog and the server. */
export interface Difference {
    /** What it is about, e.g. `role br_x_reporter`, `schema marts`, `table marts.orders`. */
    readonly object: string;
    /** For privileges: who holds them. */
    readonly role?: string;
    readonly expected: string;
    readonly actual: string;
}

const list = (p: readonly string[] | undefined) => (p && p.length > 0 ? [...p].sort().join(", ") : "none");
const same = (a: readonly string[] | undefined, b: readonly string[] | undefined) => list(a) === list(b);

/**
 * Every way the server differs from `desired`, for the objects the catalog manages and the
 * roles it declares (plus PUBLIC). Privileges are compared on the database, on the catalog's
 * schemas and on every table and sequence in them, so a grant added by hand is a difference
 * as much as one revoked. An object's owner holds every privilege on it implicitly and is not
 * compared (the transformer owns the tables dbt makes: its grant on them cannot drift).
 */
export function differences(desired: Catalog, live: LiveCatalog): Difference[] {
    const out: Difference[] = [];
    const db = desired.database;
    if (!live.database) return [{ object: `database ${db.name}`, expected: "exists", actual: "missing" }];
    if (live.database.owner !== db.owner) out.push({ object: `database ${db.name}`, expected: `owner ${db.owner}`, actual: `owner ${live.database.owner}` });
    if (db.comment !== undefined && live.database.comment !== db.comment) out.push({ object: `database ${db.name}`, expected: "comment as built", actual: live.database.comment ? "another comment" : "no comment" });

    for (const [name, want] of Object.entries(desired.roles)) {
        const got = live.roles[name];
        const object = `role ${name}`;
        if (!got) {
            out.push({ object, expected: "exists", actual: "missing" });
            continue;
        }
        if (got.login !== want.login) out.push({ object, expected: want.login ? "LOGIN" : "NOLOGIN", actual: got.login ? "LOGIN" : "NOLOGIN" });
        const limit = want.connectionLimit ?? -1;
        if (got.connectionLimit !== limit) out.push({ object, expected: `connection limit ${limit}`, actual: `connection limit ${got.connectionLimit}` });
        if (!same(got.memberOf, want.memberOf)) out.push({ object, expected: `member of ${list(want.memberOf)}`, actual: `member of ${list(got.memberOf)}` });
        if ((got.assumeRole ?? "") !== (want.assumeRole ?? "")) out.push({ object, expected: `SET role ${want.assumeRole ?? "(none)"}`, actual: `SET role ${got.assumeRole ?? "(none)"}` });
    }

    for (const [name, want] of Object.entries(desired.schemas)) {
        const got = live.schemas[name];
        if (!got) out.push({ object: `schema ${name}`, expected: "exists", actual: "missing" });
        else if (got.owner !== want.owner) out.push({ object: `schema ${name}`, expected: `owner ${want.owner}`, actual: `owner ${got.owner}` });
    }

    const grantees = [...Object.keys(desired.roles), "public"];
    for (const o of live.objects) {
        const wanted = expectedAcl(desired, o);
        for (const role of grantees) {
            if (role === o.owner) continue;
            const want = wanted[role] ?? [];
            const got = o.acl[role] ?? [];
            if (!same(want, got)) out.push({ object: o.object, role, expected: list(want), actual: list(got) });
        }
    }

    const liveDefaults = new Map(live.defaults.map((d) => [`${d.owner}/${d.schema}/${d.objectType}`, d]));
    const scopes = new Set<string>([...liveDefaults.keys()]);
    for (const d of Object.values(desired.defaults)) scopes.add(`${d.owner}/${d.schema}/${d.objectType}`);
    for (const scope of [...scopes].sort()) {
        const [owner, schema, objectType] = scope.split("/");
        if (!(owner in desired.roles)) continue;
        const got = liveDefaults.get(scope)?.acl ?? {};
        for (const role of grantees) {
            const want = Object.values(desired.defaults).find((d) => d.owner === owner && d.schema === schema && d.objectType === objectType && d.role === role)?.privileges ?? [];
            if (!same(want, got[role])) out.push({ object: `future ${objectType}s of ${owner} in ${schema || "every schema"}`, role, expected: list(want), actual: list(got[role]) });
        }
    }
    return out;
}

/** The privileges each grantee should hold on one live object, from the catalog's grants. */
export function expectedAcl(desired: Catalog, o: Pick<LiveAcl, "objectType" | "schema">): Record<string, readonly string[]> {
    const acl: Record<string, readonly string[]> = {};
    for (const g of Object.values(desired.grants)) {
        if (g.objectType !== o.objectType) continue;
        if (o.objectType !== "database" && g.schema !== o.schema) continue;
        acl[g.role] = g.privileges;
    }
    return acl;
}

/** The same catalog with the same content, whatever the order it was declared in. */
export function sameCatalog(a: Catalog | undefined, b: Catalog | undefined): boolean {
    return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
    return JSON.stringify(v, (_k, value) =>
        value && typeof value === "object" && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : value,
    );
}
