// Pulumi mocks that record every resource, so tests can look children up by type and
// name (the awsx way) and assert what would be created without an engine.
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
    readonly type: string;
    readonly name: string;
    readonly inputs: Record<string, unknown>;
    readonly urn: string;
}

export const MOCK_ADMIN_PASSWORD = "mock-admin-password";

export function installMocks(stack = "test"): Recorded[] {
    const recorded: Recorded[] = [];
    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const type = args.type;
                recorded.push({ type, name: args.name, inputs: args.inputs, urn: `urn:pulumi:${stack}::dataops::${type}::${args.name}` });
                const state: Record<string, unknown> = { ...args.inputs };
                if (args.type === "aws:rds/cluster:Cluster") Object.assign(state, { endpoint: `${args.name}.cluster.example`, port: 5432, masterUserSecrets: [{ secretArn: `arn:aws:secretsmanager:eu-west-1:123:secret:${args.name}` }] });
                if (args.type === "aws:rds/instance:Instance") Object.assign(state, { address: `${args.name}.rds.example`, port: 5432, masterUserSecrets: [{ secretArn: `arn:aws:secretsmanager:eu-west-1:123:secret:${args.name}` }] });
                if (args.type === "docker:index/container:Container") Object.assign(state, { ports: [{ internal: 5432, external: 55432 }] });
                if (args.type === PASSWORD_TYPE) Object.assign(state, { value: `generated-${args.name}` });
                if (args.type.startsWith("aws:")) Object.assign(state, { arn: `arn:aws:mock:::${args.name}` });
                return { id: `${args.name}-id`, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                if (args.token === "aws:secretsmanager/getSecretVersion:getSecretVersion")
                    return { secretString: JSON.stringify({ username: "dataops_admin", password: MOCK_ADMIN_PASSWORD }) };
                return args.inputs;
            },
        },
        "dataops",
        stack,
        false,
    );
    return recorded;
}

export const PASSWORD_TYPE = "pulumi-nodejs:dynamic/dataops:GeneratedPassword";
export const COMMENT_TYPE = "pulumi-nodejs:dynamic/dataops:DatabaseComment";

export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => output.apply(resolve));
}

/** Let every pending registration reach the mocks. */
export async function settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
}

export function byType(recorded: readonly Recorded[], type: string): Recorded[] {
    return recorded.filter((r) => r.type === type);
}

export function named(recorded: readonly Recorded[], name: string): Recorded {
    const found = recorded.find((r) => r.name === name);
    if (!found) throw new Error(`no resource named ${name}; have: ${recorded.map((r) => r.name).join(", ")}`);
    return found;
}
