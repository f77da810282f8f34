// Two small dynamic resources. They run inside the Node.js program, so an
// environment needs no provider plugin beyond PostgreSQL's (the random provider
// would be one more plugin to build on machines that cannot download it).
import * as pulumi from "@pulumi/pulumi";

interface PasswordInputs {
    length: number;
}

const passwordProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: PasswordInputs) {
        const crypto = require("crypto");
        // base64url: letters, digits, - and _, safe in connection strings and URLs.
        const value: string = crypto.randomBytes(inputs.length).toString("base64url").slice(0, inputs.length);
        return { id: crypto.randomBytes(8).toString("hex"), outs: { length: inputs.length, value } };
    },
    async diff(_id: string, olds: PasswordInputs, news: PasswordInputs) {
        const changed = olds.length !== news.length;
        return { changes: changed, replaces: changed ? ["length"] : [] };
    },
};

export interface GeneratedPasswordArgs {
    /** Characters in the password. @default 32 */
    readonly length?: number;
}

/** A random password made once and kept in state as a secret; replaced only when its length changes. */
export class GeneratedPassword extends pulumi.dynamic.Resource {
    declare readonly value: pulumi.Output<string>;
    declare readonly length: pulumi.Output<number>;

    constructor(name: string, args: GeneratedPasswordArgs = {}, opts: pulumi.CustomResourceOptions = {}) {
        const length = args.length ?? 32;
        if (!Number.isInteger(length) || length < 16 || length > 128)
            throw new Error(`GeneratedPassword ${name}: length must be a whole number from 16 to 128, given ${length}`);
        super(passwordProvider, name, { length, value: undefined }, { ...opts, additionalSecretOutputs: ["value"] }, "dataops", "GeneratedPassword");
    }
}

export interface AdminConnection {
    host: string;
    port: number;
    user: string;
    password: string;
    sslMode: string;
}

interface CommentInputs {
    connection: AdminConnection;
    database: string;
    comment: string;
}

async function setComment(inputs: CommentInputs): Promise<void> {
    const { Client } = require("pg");
    const c = inputs.connection;
    const client = new Client({
        host: c.host,
        port: c.port,
        user: c.user,
        password: c.password,
        database: inputs.database,
        ssl: c.sslMode === "disable" ? false : c.sslMode === "prefer" ? undefined : { rejectUnauthorized: c.sslMode.startsWith("verify") },
    });
    await client.connect();
    try {
        // Both parts are quoted by the driver: no text from config reaches SQL unescaped.
        await client.query(`COMMENT ON DATABASE ${client.escapeIdentifier(inputs.database)} IS ${client.escapeLiteral(inputs.comment)}`);
    } finally {
        await client.end();
    }
}

const commentProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: CommentInputs) {
        await setComment(inputs);
        return { id: inputs.database, outs: inputs };
    },
    async diff(_id: string, olds: CommentInputs, news: CommentInputs) {
        const replaces = olds.database !== news.database ? ["database"] : [];
        return { changes: replaces.length > 0 || olds.comment !== news.comment, replaces };
    },
    async update(_id: string, _olds: CommentInputs, news: CommentInputs) {
        await setComment(news);
        return { outs: news };
    },
    // Nothing to undo: the comment goes with the database.
    async delete() {},
};

export interface DatabaseCommentArgs {
    readonly connection: pulumi.Input<AdminConnection>;
    readonly database: pulumi.Input<string>;
    readonly comment: pulumi.Input<string>;
}

/** `COMMENT ON DATABASE`, which the PostgreSQL provider does not offer; records what the environment was built from. */
export class DatabaseComment extends pulumi.dynamic.Resource {
    declare readonly comment: pulumi.Output<string>;

    constructor(name: string, args: DatabaseCommentArgs, opts: pulumi.CustomResourceOptions = {}) {
        super(commentProvider, name, { ...args, connection: pulumi.secret(args.connection) }, opts, "dataops", "DatabaseComment");
    }
}
