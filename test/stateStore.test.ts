// The backend's bucket as dataops reads it: the s3:// URL read as the engine reads it, a file
// store, the one-pass listing of every stack's tags, and what a destroyed stack leaves.
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listStore, readStackTags, stackExists, writeStackTags } from "../lifecycle/bucketList";
import { belongsTo, purgeStack, stackObjects } from "../lifecycle/purge";
import { s3Settings } from "../local/s3Store";
import { fileStore, type StateStore } from "../local/stateStore";

describe("an s3:// backend URL, read as the engine reads it", () => {
    it("GIVEN the parameters a self-hosted S3 needs THEN the bucket, the prefix, the endpoint, path-style and the region are those the engine uses", () => {
        const s = s3Settings("s3://state-bucket/teams/data?endpoint=http://127.0.0.1:9000&s3ForcePathStyle=true&region=eu-west-1", {});
        expect(s).toMatchObject({ bucket: "state-bucket", prefix: "teams/data/", where: "s3://state-bucket/teams/data", client: { endpoint: "http://127.0.0.1:9000", forcePathStyle: true, region: "eu-west-1" } });
    });

    it("GIVEN no parameters THEN the AWS environment decides, as it does for the engine: AWS_REGION, AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL", () => {
        expect(s3Settings("s3://b", { AWS_REGION: "us-east-2", AWS_ENDPOINT_URL: "http://a:1", AWS_ENDPOINT_URL_S3: "http://s3:2" }).client).toEqual({ region: "us-east-2", endpoint: "http://s3:2" });
        expect(s3Settings("s3://b", { AWS_DEFAULT_REGION: "ap-south-1" })).toMatchObject({ prefix: "", client: { region: "ap-south-1" } });
        // The URL's own parameters win over the environment.
        expect(s3Settings("s3://b?region=eu-north-1&endpoint=http://u:3", { AWS_REGION: "us-east-2", AWS_ENDPOINT_URL_S3: "http://s3:2" }).client).toEqual({ region: "eu-north-1", endpoint: "http://u:3" });
    });

    it("GIVEN the SDK v1 names (disableSSL, a scheme-less endpoint) THEN they are translated as the engine translates them", () => {
        expect(s3Settings("s3://b?endpoint=minio:9000&disableSSL=true&use_path_style=1", {}).client).toEqual({ endpoint: "http://minio:9000", forcePathStyle: true });
        expect(s3Settings("s3://b?endpoint=minio:9000", {}).client).toEqual({ endpoint: "https://minio:9000" });
        expect(s3Settings("s3://b?sseType=aws:kms&kmskeyid=k-1&awssdk=v2", {}).encryption).toEqual({ type: "aws:kms", kmsKeyId: "k-1" });
    });

    it("GIVEN a parameter dataops cannot honour, or a bad value THEN an error names it, what is allowed and what was given", () => {
        expect(() => s3Settings("s3://b?role=arn:aws:iam::1:role/x", {})).toThrow(/PULUMI_BACKEND_URL: dataops reads the bucket itself and does not support the query parameter "role" \(supported: region, endpoint/);
        expect(() => s3Settings("s3://b?s3ForcePathStyle=yes", {})).toThrow('PULUMI_BACKEND_URL: the query parameter s3ForcePathStyle must be true or false, given "yes"');
        expect(() => s3Settings("s3:///nobucket", {})).toThrow("PULUMI_BACKEND_URL: an s3:// URL names a bucket (s3://BUCKET[/PREFIX])");
        expect(() => s3Settings("s3://b?request_checksum_calculation=always", {})).toThrow('request_checksum_calculation: allowed when_supported | when_required, given "always"');
    });
});

/** A bucket laid out as the engine lays out a project-scoped DIY backend. */
async function backend(stacks: Array<{ name: string; tags?: Record<string, string>; resources?: number }>): Promise<StateStore> {
    const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-bucket-")));
    await store.write(".pulumi/meta.yaml", "version: 1\n");
    for (const s of stacks) {
        const checkpoint = { version: 3, checkpoint: { stack: `organization/dataops/${s.name}`, latest: { manifest: { time: "2026-11-30T08:00:00Z" }, resources: Array.from({ length: s.resources ?? 0 }, (_, i) => ({ urn: `u${i}` })) } } };
        await store.write(`.pulumi/stacks/dataops/${s.name}.json`, JSON.stringify(checkpoint));
        await store.write(`.pulumi/stacks/dataops/${s.name}.json.bak`, JSON.stringify(checkpoint));
        if (s.tags) await store.write(`.pulumi/stacks/dataops/${s.name}.pulumi-tags`, JSON.stringify({ version: 1, tags: s.tags }));
        await store.write(`.pulumi/backups/dataops/${s.name}/${s.name}.1764000000000000000.json`, "{}");
        await store.write(`.pulumi/history/dataops/${s.name}/${s.name}-1764000000000000000.history.json`, "{}");
        await store.write(`.pulumi/history/dataops/${s.name}/${s.name}-1764000000000000000.checkpoint.json`, "{}");
    }
    return store;
}

describe("every stack's tags in one pass", () => {
    it("GIVEN three stacks in a bucket THEN each is listed with its tags, last update and resource count, in name order; without details, the tags only", async () => {
        const store = await backend([
            { name: "br-b", tags: { "dataops:kind": "branch", "dataops:branch": "b" }, resources: 12 },
            { name: "br-a", tags: { "dataops:kind": "branch", "dataops:branch": "a" }, resources: 3 },
            { name: "prod", resources: 40 },
        ]);
        expect(await listStore(store, { details: true })).toEqual([
            { name: "br-a", tags: { "dataops:kind": "branch", "dataops:branch": "a" }, lastUpdate: "2026-11-30T08:00:00.000Z", resourceCount: 3 },
            { name: "br-b", tags: { "dataops:kind": "branch", "dataops:branch": "b" }, lastUpdate: "2026-11-30T08:00:00.000Z", resourceCount: 12 },
            { name: "prod", tags: {}, lastUpdate: "2026-11-30T08:00:00.000Z", resourceCount: 40 },
        ]);
        expect(await listStore(store, { details: false })).toEqual([
            { name: "br-a", tags: { "dataops:kind": "branch", "dataops:branch": "a" } },
            { name: "br-b", tags: { "dataops:kind": "branch", "dataops:branch": "b" } },
            { name: "prod", tags: {} },
        ]);
    });

    it("GIVEN an empty bucket THEN no stacks; GIVEN unreadable tags or a compressed checkpoint THEN undefined, so the engine is asked", async () => {
        expect(await listStore(await backend([]), { details: true })).toEqual([]);
        const broken = await backend([{ name: "br-a", tags: {} }]);
        await broken.write(".pulumi/stacks/dataops/br-a.pulumi-tags", "{not json");
        expect(await listStore(broken, { details: false })).toBeUndefined();
        const gz = await backend([]);
        await gz.write(".pulumi/stacks/dataops/br-z.json.gz", "x");
        expect(await listStore(gz, { details: true })).toBeUndefined();
        expect(await stackExists(gz, "br-z")).toBeUndefined();
    });

    it("GIVEN stacks of another project and a legacy stack beside them THEN the other project is ignored, and the legacy layout is left to the engine", async () => {
        const store = await backend([{ name: "br-a", tags: { "dataops:kind": "branch" } }]);
        await store.write(".pulumi/stacks/other-project/br-a.json", "{}");
        expect((await listStore(store, { details: false }))?.map((s) => s.name)).toEqual(["br-a"]);
        expect(await stackExists(store, "br-a")).toBe(true);
        expect(await stackExists(store, "br-b")).toBe(false);
        await store.write(".pulumi/stacks/old-stack.json", "{}");
        expect(await listStore(store, { details: false })).toBeUndefined();
        expect(await stackExists(store, "br-a")).toBeUndefined();
    });
});

describe("a stack's tags, written in one write", () => {
    it("GIVEN a stack with tags WHEN tags are written THEN they are merged into the engine's object, others kept, in the engine's format", async () => {
        const store = await backend([{ name: "br-a", tags: { "dataops:keep": "true", "dataops:branch": "a" } }]);
        expect(await writeStackTags(store, "br-a", { "dataops:kind": "branch", "dataops:branch": "a2" })).toBe(true);
        expect(JSON.parse((await store.read(".pulumi/stacks/dataops/br-a.pulumi-tags"))!)).toEqual({ version: 1, tags: { "dataops:keep": "true", "dataops:branch": "a2", "dataops:kind": "branch" } });
        expect(await readStackTags(store, "br-a")).toEqual({ "dataops:keep": "true", "dataops:branch": "a2", "dataops:kind": "branch" });
    });

    it("GIVEN a stack never tagged THEN it reads as no tags, and a write makes its object", async () => {
        const store = await backend([{ name: "br-a" }]);
        expect(await readStackTags(store, "br-a")).toEqual({});
        expect(await writeStackTags(store, "br-a", { "dataops:kind": "branch" })).toBe(true);
        expect(await readStackTags(store, "br-a")).toEqual({ "dataops:kind": "branch" });
    });

    it("GIVEN no such stack, an object of another version, unreadable tags or a legacy layout THEN nothing is written and the engine is left to answer", async () => {
        const store = await backend([{ name: "br-a", tags: {} }, { name: "br-b", tags: {} }]);
        expect(await writeStackTags(store, "br-gone", { "dataops:kind": "branch" })).toBe(false);
        expect(await store.read(".pulumi/stacks/dataops/br-gone.pulumi-tags")).toBeUndefined();
        await store.write(".pulumi/stacks/dataops/br-a.pulumi-tags", JSON.stringify({ version: 2, tags: { x: "y" } }));
        expect(await readStackTags(store, "br-a")).toBeUndefined();
        expect(await writeStackTags(store, "br-a", { "dataops:kind": "branch" })).toBe(false);
        expect(JSON.parse((await store.read(".pulumi/stacks/dataops/br-a.pulumi-tags"))!)).toEqual({ version: 2, tags: { x: "y" } });
        await store.write(".pulumi/stacks/dataops/br-b.pulumi-tags", "{not json");
        expect(await writeStackTags(store, "br-b", { "dataops:kind": "branch" })).toBe(false);
        await store.write(".pulumi/stacks/old-stack.json", "{}");
        expect(await readStackTags(store, "br-a")).toBeUndefined();
    });
});

describe("what a destroyed stack leaves", () => {
    it("GIVEN keys of two stacks whose names start alike THEN each belongs only to its own", () => {
        expect(belongsTo(".pulumi/stacks/dataops/br-a.json.bak", "br-a")).toBe(true);
        expect(belongsTo(".pulumi/stacks/dataops/br-a-2.json", "br-a")).toBe(false);
        expect(belongsTo(".pulumi/backups/dataops/br-a-2/x.json", "br-a")).toBe(false);
        expect(belongsTo(".pulumi/backups/dataops/br-a/x.json", "br-a")).toBe(true);
        expect(belongsTo(".dataops/leases/dataops/br-a/1.json", "br-a")).toBe(true);
    });

    it("GIVEN a removed stack's backups, history, .bak and a dead run's lease WHEN purged THEN nothing of it is left and its neighbour is untouched", async () => {
        const store = await backend([{ name: "br-a", tags: {} }, { name: "br-a-2", tags: {} }]);
        // As `pulumi stack rm` leaves it: the checkpoint and the tags gone.
        await store.remove([".pulumi/stacks/dataops/br-a.json", ".pulumi/stacks/dataops/br-a.pulumi-tags"]);
        await store.write(".dataops/leases/dataops/br-a/dead.json", "{}");
        // Looked at two periods later: the lease has been silent since.
        const removed = await purgeStack(store, "br-a", false, 60, () => Date.now() + 120_000);
        expect(removed).toContain(".pulumi/stacks/dataops/br-a.json.bak");
        expect(await stackObjects(store, "br-a")).toEqual([]);
        expect((await stackObjects(store, "br-a-2")).length).toBe(6);
    });

    it("GIVEN DATAOPS_KEEP_STATE_HISTORY WHEN purged THEN the backups and the .bak stay; a lock and a live checkpoint are never removed", async () => {
        const store = await backend([{ name: "br-a", tags: {} }]);
        await store.write(".pulumi/locks/organization/dataops/br-a/new-run.json", "{}");
        await purgeStack(store, "br-a", true);
        expect(await stackObjects(store, "br-a")).toEqual([
            ".pulumi/stacks/dataops/br-a.json",
            ".pulumi/stacks/dataops/br-a.json.bak",
            ".pulumi/stacks/dataops/br-a.pulumi-tags",
            ".pulumi/backups/dataops/br-a/br-a.1764000000000000000.json",
            ".pulumi/locks/organization/dataops/br-a/new-run.json",
        ]);
    });
});

describe("a file store", () => {
    it("GIVEN fileblob's .attrs sidecars THEN they are no objects of their own, and go with their object; emptied folders go too", async () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-store-"));
        const store = fileStore(dir);
        await store.write(".pulumi/locks/organization/dataops/br-a/x.json", "{}");
        writeFileSync(join(dir, ".pulumi/locks/organization/dataops/br-a/x.json.attrs"), "{}");
        expect((await store.list(".pulumi/locks/")).map((o) => o.key)).toEqual([".pulumi/locks/organization/dataops/br-a/x.json"]);
        await store.remove([".pulumi/locks/organization/dataops/br-a/x.json", ".pulumi/locks/organization/dataops/br-a/gone.json"]);
        expect(existsSync(join(dir, ".pulumi/locks/organization/dataops/br-a"))).toBe(false);
        expect(await store.read(".pulumi/locks/organization/dataops/br-a/x.json")).toBeUndefined();
    });
});
