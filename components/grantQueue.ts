// PostgreSQL keeps an object's privileges in one catalog row. Two GRANTs on the same
// object from parallel sessions fail with "tuple concurrently updated", and Pulumi
// runs independent resources in parallel. So grants on the same object are chained;
// grants on different objects still run side by side.
import * as pulumi from "@pulumi/pulumi";

export class GrantQueue {
    private readonly last = new Map<string, pulumi.Resource>();

    /** Options for a grant on `object` (e.g. `database`, `schema:marts`): it waits for the previous grant on it. */
    after(object: string, opts: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
        const previous = this.last.get(object);
        if (!previous) return opts;
        const deps = opts.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? opts.dependsOn : [opts.dependsOn as pulumi.Input<pulumi.Resource>];
        return { ...opts, dependsOn: [...deps, previous] };
    }

    /** Record `resource` as the latest grant on `object`. Returns it for chaining. */
    push<T extends pulumi.Resource>(object: string, resource: T): T {
        this.last.set(object, resource);
        return resource;
    }
}
