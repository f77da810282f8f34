// The access diff: every role's effective privileges, computed from a config the way
// the components grant them (accessMatrix, the privilege lists of AccessRoles and
// LoaderConnector), and what a change adds or removes, e.g. `+ reporter: SELECT on raw_salesforce`.
import { LOADER_SCHEMA, READ_SCHEMA, READ_TABLE, WRITE_SCHEMA, WRITE_SEQUENCE, WRITE_TABLE, accessMatrix, databasePrivileges } from "../components/privileges";
import { type DataopsConfig, loaderSchema } from "../config/schema";

/** What a grantee holds on one object. */
export interface Grant {
    /** Config name: `transformer`, `loader_salesforce`, or `user alice` for memberships. */
    readonly grantee: string;
    /** `database`, `schema marts`, `marts` (its tables), `sequences in marts`, or `member of` for users. */
    readonly object: string;
    readonly privileges: readonly string[];
}

// The order people read privileges in; the components' lists are alphabetical.
const ORDER = ["CONNECT", "TEMPORARY", "CREATE", "USAGE", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"];
const ordered = (ps: Iterable<string>) => [...new Set(ps)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const rank = (p: string) => (ORDER.includes(p) ? ORDER.indexOf(p) : ORDER.length);

export function grantsOf(c: DataopsConfig): Grant[] {
    const loaders = c.loaders.map((l) => ({ name: l.name, schema: loaderSchema(l) }));
    const schemas = [...c.warehouse.schemas, ...loaders.map((l) => l.schema)];
    const matrix = accessMatrix(c.access, schemas, loaders);
    const out: Grant[] = [];
    for (const [role, row] of Object.entries(matrix)) {
        out.push({ grantee: role, object: "database", privileges: ordered(databasePrivileges(row)) });
        const loader = role.startsWith("loader_");
        for (const [schema, access] of Object.entries(row)) {
            if (loader) {
                out.push({ grantee: role, object: `schema ${schema}`, privileges: ordered(LOADER_SCHEMA) });
                continue;
            }
            const write = access === "write";
            out.push({ grantee: role, object: `schema ${schema}`, privileges: ordered(write ? WRITE_SCHEMA : READ_SCHEMA) });
            out.push({ grantee: role, object: schema, privileges: ordered(write ? WRITE_TABLE : READ_TABLE) });
            if (write) out.push({ grantee: role, object: `sequences in ${schema}`, privileges: ordered(WRITE_SEQUENCE) });
        }
    }
    for (const u of c.access.users) out.push({ grantee: `user ${u.name}`, object: "member of", privileges: [...u.roles] });
    return out;
}

export function grantLine(g: Grant): string {
    return g.object === "member of" ? `${g.grantee}: member of ${g.privileges.join(", ")}` : `${g.grantee}: ${g.privileges.join(", ")} on ${g.object}`;
}

/** Every privilege line of a config, in a stable order. */
export function privilegeLines(c: DataopsConfig | undefined): string[] {
    return c ? sortGrants(grantsOf(c)).map(grantLine) : [];
}

// Roles in name order, users after roles; per grantee database, then per schema: schema, tables, sequences.
function sortKey(g: Grant): string {
    const kind = g.object === "database" ? "0" : g.object === "member of" ? "9" : g.object.startsWith("schema ") ? "1" : g.object.startsWith("sequences in ") ? "3" : "2";
    const schema = g.object.replace(/^(schema |sequences in )/, "");
    return `${g.grantee.startsWith("user ") ? "1" : "0"}\u0000${g.grantee}\u0000${kind === "0" || kind === "9" ? "" : schema}\u0000${kind}`;
}

function sortGrants(gs: Grant[]): Grant[] {
    return [...gs].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
}

/**
 * What changes from `base` to `head`, per grantee and object: only the privileges added or
 * removed, so read → write on marts shows `+ reporter: CREATE on schema marts`, not a
 * removed line and an added one. A missing config (a new or removed stack) grants nothing.
 */
export function diffAccess(base: DataopsConfig | undefined, head: DataopsConfig | undefined): { added: string[]; removed: string[] } {
    const index = (c: DataopsConfig | undefined) => new Map((c ? grantsOf(c) : []).map((g) => [`${g.grantee}\u0000${g.object}`, g]));
    const before = index(base);
    const after = index(head);
    const change = (from: Map<string, Grant>, to: Map<string, Grant>): Grant[] => {
        const out: Grant[] = [];
        for (const [k, g] of to) {
            const had = new Set(from.get(k)?.privileges ?? []);
            const extra = g.privileges.filter((p) => !had.has(p));
            if (extra.length > 0) out.push({ ...g, privileges: g.object === "member of" ? extra : ordered(extra) });
        }
        return sortGrants(out);
    };
    return { added: change(before, after).map(grantLine), removed: change(after, before).map(grantLine) };
}
