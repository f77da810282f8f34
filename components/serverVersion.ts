// The versioned warehouse with the `provider` engine: @pulumi/postgresql's `expectedVersion`
// only selects features, it checks nothing. This resource reads the server's version and
// refuses a server that does not honour the pin (components/catalogSql.ts checkServerVersion,
// the same rule as the `sql` engine's); every object depends on it, so a refusal comes before
// any of them changes. A refresh reads the version again.
import * as pulumi from "@pulumi/pulumi";
import type { AdminConnection } from "./generated";

interface VersionState {
    connection: AdminConnection;
    /** The pin, MAJOR.MINOR. */
    engineVersion: string;
    /** What the server runs, MAJOR.MINOR (output). */
    serverVersion?: string;
}

// Serialized into the state like the SqlCatalog's provider: it loads the check by path.
function check(): (conn: AdminConnection, pinned: string | undefined) => Promise<string> {
    const path = require("path");
    const fs = require("fs");
    let root = path.resolve(path.dirname(require.resolve("@pulumi/pulumi/package.json")), "..", "..", "..");
    if (!fs.existsSync(path.join(root, "components", "catalogSql.ts"))) root = process.cwd();
    return require(path.join(root, "bin", "build.js")).load(root, "components/catalogSql").checkServerVersion;
}

const versionProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: VersionState) {
        const serverVersion = await check()(inputs.connection, inputs.engineVersion);
        return { id: `${inputs.connection.host}:${inputs.connection.port}`, outs: { ...inputs, serverVersion } };
    },
    async diff(_id: string, olds: VersionState, news: VersionState) {
        // Checked again whenever the pin or the server changes.
        return { changes: olds.engineVersion !== news.engineVersion || olds.connection?.host !== news.connection.host || Number(olds.connection?.port) !== Number(news.connection.port) };
    },
    async update(_id: string, _olds: VersionState, news: VersionState) {
        return { outs: { ...news, serverVersion: await check()(news.connection, news.engineVersion) } };
    },
    async read(id: string, props: VersionState) {
        return { id, props: { ...props, serverVersion: await check()(props.connection, undefined) } };
    },
    async delete() {},
};

export interface ServerVersionArgs {
    readonly connection: pulumi.Input<AdminConnection>;
    /** The pin, `warehouse.engineVersion`. */
    readonly engineVersion: string;
}

/** The server's real version, checked against the pin before anything inside the warehouse changes (provider engine). */
export class ServerVersion extends pulumi.dynamic.Resource {
    declare readonly serverVersion: pulumi.Output<string>;

    constructor(name: string, args: ServerVersionArgs, opts: pulumi.CustomResourceOptions = {}) {
        super(versionProvider, name, { connection: pulumi.secret(args.connection), engineVersion: args.engineVersion, serverVersion: undefined }, opts, "dataops", "ServerVersion");
    }
}
