// The `sql` engine: an environment's objects inside PostgreSQL are one Pulumi resource,
// `SqlCatalog`, reconciled in-process over a pg connection (components/catalogSql.ts).
// The components declare roles, schemas and grants through the same interface as the
// `provider` engine (components/pg.ts); here each declaration is recorded, and when the
// environment is complete the recorded catalog becomes the resource's input. So a plan is
// one update that names each changed object (its `catalog` input is keyed by object), an
// update runs in a few transactions instead of a hundred resource operations, and
// `pulumi refresh` reads the whole catalog back in two queries (`drift` output).
import * as pulumi from "@pulumi/pulumi";
import type { Catalog, CopySpec, DefaultSpec, Difference, GrantSpec, ObjectType, Provenance, RoleSpec } from "./catalog";
import { defaultKey, grantKey, privilegeList } from "./catalog";
import type { AdminConnection } from "./generated";
import type { Named, PgObjects } from "./pg";

interface CatalogState {
    connection: AdminConnection;
    catalog: Catalog;
    /** Secret: login role → password. */
    passwords: Record<string, string>;
    /** Set by a refresh: how the server differs from `catalog`. Empty after every apply. */
    drift?: Difference[];
    /** The pinned PostgreSQL version (MAJOR.MINOR): the server is checked against it before any change. */
    engineVersion?: string;
    /** What the server runs, MAJOR.MINOR (output). */
    serverVersion?: string;
    /** Where the data came from, when the database was made as a copy (output); kept across updates. */
    copied?: Provenance | null;
}

// The provider is serialized into the state, so it stays a few lines and loads its
// statements by path. The path is found from where @pulumi/pulumi is installed (the
// project's node_modules), not from the working directory: the engine may run anywhere.
function statements(): typeof import("./catalogSql") {
    const path = require("path");
    const fs = require("fs");
    let root = path.resolve(path.dirname(require.resolve("@pulumi/pulumi/package.json")), "..", "..", "..");
    if (!fs.existsSync(path.join(root, "components", "catalogSql.ts"))) root = process.cwd();
    // Compiled once into .dataops/build (bin/build.js), so the provider host starts no TypeScript compiler.
    return require(path.join(root, "bin", "build.js")).load(root, "components/catalogSql");
}

const catalogProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: CatalogState) {
        const s = statements();
        const serverVersion = await s.checkServerVersion(inputs.connection, inputs.engineVersion);
        const copied = await s.applyCatalog(inputs.connection, inputs.catalog, inputs.passwords);
        return { id: inputs.catalog.database.name, outs: { ...inputs, drift: [], serverVersion, copied: copied ?? null } };
    },
    async diff(_id: string, olds: CatalogState, news: CatalogState) {
        const s = statements();
        const renamed = olds.catalog?.database?.name !== news.catalog.database.name;
        const changes =
            renamed ||
            !s.sameCatalog(olds.catalog, news.catalog) ||
            (olds.drift ?? []).length > 0 ||
            !s.sameCatalog(olds.passwords as never, news.passwords as never) ||
            olds.engineVersion !== news.engineVersion ||
            s.serverMoved(olds.connection, news.connection) !== undefined;
        // Another database name is another environment's database: the old one goes first.
        return { changes, replaces: renamed ? ["catalog"] : [], deleteBeforeReplace: renamed };
    },
    async update(_id: string, olds: CatalogState, news: CatalogState) {
        const s = statements();
        const moved = s.serverMoved(olds.connection, news.connection);
        if (moved) throw new Error(moved);
        const serverVersion = await s.checkServerVersion(news.connection, news.engineVersion);
        const copied = await s.applyCatalog(news.connection, news.catalog, news.passwords, olds.catalog);
        return { outs: { ...news, drift: [], serverVersion, copied: copied ?? olds.copied ?? null } };
    },
    async delete(_id: string, olds: CatalogState) {
        await statements().dropCatalog(olds.connection, olds.catalog);
    },
    async read(id: string, props: CatalogState) {
        const s = statements();
        const serverVersion = await s.checkServerVersion(props.connection, undefined);
        return { id, props: { ...props, drift: await s.drift(props.connection, props.catalog), serverVersion } };
    },
};

/** One environment's roles, database, schemas, grants and default privileges, reconciled as a whole. */
export class SqlCatalog extends pulumi.dynamic.Resource {
    declare readonly catalog: pulumi.Output<Catalog>;
    declare readonly drift: pulumi.Output<Difference[]>;
    declare readonly serverVersion: pulumi.Output<string>;
    declare readonly copied: pulumi.Output<Provenance | null>;

    constructor(
        name: string,
        args: { connection: pulumi.Input<AdminConnection>; catalog: pulumi.Input<Catalog>; passwords: pulumi.Input<Record<string, string>>; engineVersion?: string },
        opts: pulumi.CustomResourceOptions = {},
    ) {
        super(
            catalogProvider,
            name,
            { connection: pulumi.secret(args.connection), catalog: args.catalog, passwords: pulumi.secret(args.passwords), engineVersion: args.engineVersion, drift: undefined, serverVersion: undefined, copied: undefined },
            { ...opts, additionalSecretOutputs: ["connection", "passwords"] },
            "dataops",
            "SqlCatalog",
        );
    }
}

type Declared = { kind: "role" | "database" | "schema" | "grant" | "defaultPrivileges" | "comment"; args: Record<string, unknown> };

const text = (v: unknown, what: string): string => {
    if (typeof v !== "string" || v.length === 0) throw new Error(`${what}: expected a non-empty string, given ${JSON.stringify(v)}`);
    return v;
};

/** The recorded declarations as one catalog. Throws, naming the field, on anything malformed. */
export function toCatalog(declared: ReadonlyArray<{ kind: string; args: Record<string, unknown> }>): Catalog {
    const roles: Record<string, RoleSpec> = {};
    const schemas: Record<string, { owner: string }> = {};
    const grants: Record<string, GrantSpec> = {};
    const defaults: Record<string, DefaultSpec> = {};
    let database: Catalog["database"] | undefined;
    let comment: string | undefined;
    for (const { kind, args: a } of declared) {
        if (kind === "role") {
            const name = text(a.name, "role name");
            const memberOf = ((a.roles ?? []) as unknown[]).map((r) => text(r, `role ${name}: roles[]`)).sort();
            roles[name] = {
                login: a.login === true,
                ...(typeof a.connectionLimit === "number" ? { connectionLimit: Math.trunc(a.connectionLimit) } : {}),
                memberOf,
                ...(typeof a.assumeRole === "string" && a.assumeRole ? { assumeRole: a.assumeRole } : {}),
            };
        } else if (kind === "database") {
            if (database) throw new Error(`database: one per environment, given ${database.name} and ${String(a.name)}`);
            database = { name: text(a.name, "database name"), owner: text(a.owner, "database owner"), ...(a.copy ? { copy: a.copy as CopySpec } : {}) };
        } else if (kind === "schema") {
            schemas[text(a.name, "schema name")] = { owner: text(a.owner, `schema ${String(a.name)}: owner`) };
        } else if (kind === "grant") {
            const objectType = text(a.objectType, "grant objectType") as ObjectType;
            const privileges = privilegeList(objectType, a.privileges);
            const g: GrantSpec = {
                role: text(a.role, "grant role"),
                objectType,
                ...(objectType !== "database" ? { schema: text(a.schema, `grant to ${String(a.role)}: schema`) } : {}),
                privileges,
            };
            grants[grantKey(g, text(a.database, "grant database"))] = g;
        } else if (kind === "defaultPrivileges") {
            const objectType = text(a.objectType, "default privileges objectType");
            if (objectType !== "table" && objectType !== "sequence") throw new Error(`default privileges objectType: allowed table | sequence, given ${JSON.stringify(objectType)}`);
            const d: DefaultSpec = {
                owner: text(a.owner, "default privileges owner"),
                role: text(a.role, "default privileges role"),
                schema: text(a.schema, "default privileges schema"),
                objectType,
                privileges: privilegeList(objectType, a.privileges),
            };
            defaults[defaultKey(d)] = d;
        } else if (kind === "comment") {
            comment = String(a.comment);
        }
    }
    if (!database) throw new Error("database: an environment declares exactly one, given none");
    return { database: { ...database, ...(comment !== undefined ? { comment } : {}) }, roles, schemas, grants, defaults };
}

/**
 * PgObjects for the `sql` engine: records what the components declare, and makes it one
 * SqlCatalog when the environment is complete (`finish`). What it returns for each object
 * carries the object's name, and stands for the SqlCatalog in `dependsOn`: a resource that
 * needs a role or a schema waits for the whole catalog.
 */
export class CatalogObjects implements PgObjects {
    readonly engine = "sql" as const;
    readonly resource: SqlCatalog;
    /** The catalog as declared, once every component declared its objects. */
    readonly catalog: pulumi.Output<Catalog>;
    private readonly declared: Declared[] = [];
    private readonly passwords: Record<string, pulumi.Input<string>> = {};
    private complete!: (d: Declared[]) => void;

    constructor(name: string, admin: pulumi.Input<AdminConnection>, opts: pulumi.CustomResourceOptions = {}, engineVersion?: string) {
        const done = new Promise<Declared[]>((resolve) => {
            this.complete = resolve;
        });
        const catalog = pulumi.output(done).apply((d) => pulumi.output(d.map((x) => x.args)).apply((args) => toCatalog(args.map((a, i) => ({ kind: d[i].kind, args: a as Record<string, unknown> })))));
        const passwords = pulumi.output(done).apply(() => pulumi.all(this.passwords));
        this.catalog = catalog;
        this.resource = new SqlCatalog(name, { connection: admin, catalog, passwords: pulumi.secret(passwords), engineVersion }, opts);
    }

    private record(kind: Declared["kind"], name: pulumi.Input<string | undefined> | undefined, args: object): Named {
        this.declared.push({ kind, args: { ...args } });
        // An object whose prototype is the SqlCatalog: Pulumi takes it for that resource in dependsOn.
        return Object.assign(Object.create(this.resource) as Named, { name: pulumi.output(name).apply((n) => n ?? "") });
    }

    role(_n: string, a: import("@pulumi/postgresql").RoleArgs): Named {
        const { password, ...rest } = a;
        // Role names are plain text from the naming module; the password map is keyed by them.
        if (typeof a.name !== "string") throw new Error(`role: the sql engine needs a role's name as text, given ${typeof a.name}`);
        if (password !== undefined) this.passwords[a.name] = password as pulumi.Input<string>;
        return this.record("role", a.name, rest);
    }
    database(_n: string, a: import("@pulumi/postgresql").DatabaseArgs): Named {
        return this.record("database", a.name, a);
    }
    schema(_n: string, a: import("@pulumi/postgresql").SchemaArgs): Named {
        return this.record("schema", a.name, a);
    }
    grant(_n: string, a: import("@pulumi/postgresql").GrantArgs): pulumi.CustomResource {
        return this.record("grant", undefined, a);
    }
    defaultPrivileges(_n: string, a: import("@pulumi/postgresql").DefaultPrivilegesArgs): pulumi.CustomResource {
        return this.record("defaultPrivileges", undefined, a);
    }
    comment(_n: string, a: { database: pulumi.Input<string>; comment: pulumi.Input<string> }): pulumi.CustomResource {
        return this.record("comment", undefined, a);
    }
    finish(): void {
        this.complete(this.declared);
    }
}
