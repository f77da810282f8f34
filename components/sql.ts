// PostgreSQL objects executed in-process over a pg connection, as Pulumi dynamic
// resources. Same inputs as @pulumi/postgresql's Role, Database, Schema, Grant and
// DefaultPrivileges; used where that provider plugin cannot be installed (machines
// that reach only package registries) and on the embedded default, where it also
// saves a plugin start. Every identifier is quoted by the driver and every privilege
// checked against a fixed list, so no config text reaches SQL unescaped.
import * as pulumi from "@pulumi/pulumi";
import type { AdminConnection } from "./generated";

export interface SqlInputs {
    connection: AdminConnection;
    [key: string]: unknown;
}

// The provider object is serialized into the state of every resource that uses it, and
// the file backend rewrites the whole state after each operation. So it stays a few
// lines: the statements (components/sqlOps.ts) are loaded by path in the provider host,
// which runs in the project folder, instead of being serialized by value into every
// resource (14 KB each, twice: that made updates grow with the square of the loaders).
function ops(): typeof import("./sqlOps") {
    require("tsx/cjs");
    return require(require("path").join(process.cwd(), "components", "sqlOps.ts"));
}

const sqlProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: SqlInputs) {
        const id = await ops().apply(inputs, undefined);
        return { id, outs: inputs };
    },
    async diff(_id: string, olds: SqlInputs, news: SqlInputs) {
        return ops().diff(olds, news);
    },
    async update(_id: string, olds: SqlInputs, news: SqlInputs) {
        await ops().apply(news, olds);
        return { outs: news };
    },
    async delete(_id: string, olds: SqlInputs) {
        await ops().remove(olds);
    },
};

export type SqlKind = "role" | "database" | "schema" | "grant" | "defaultPrivileges";

const TYPE_NAMES: Record<SqlKind, string> = {
    role: "SqlRole",
    database: "SqlDatabase",
    schema: "SqlSchema",
    grant: "SqlGrant",
    defaultPrivileges: "SqlDefaultPrivileges",
};

/** One PostgreSQL object, managed by SQL over the admin connection. `name` mirrors the provider resources' output. */
export class SqlObject extends pulumi.dynamic.Resource {
    declare readonly name: pulumi.Output<string>;

    constructor(kind: SqlKind, name: string, connection: pulumi.Input<AdminConnection>, args: Record<string, unknown>, opts: pulumi.CustomResourceOptions = {}) {
        super(sqlProvider, name, { kind, ...args, name: (args.name as pulumi.Input<string> | undefined) ?? "", connection: pulumi.secret(connection) }, opts, "dataops", TYPE_NAMES[kind]);
    }
}
