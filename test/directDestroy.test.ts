// Which states dataops destroys without the engine (lifecycle/directDestroy.ts): only those
// holding nothing but an environment's catalog, generated passwords and version checks; for
// anything else, or any doubt, the engine.
import { describe, expect, it } from "vitest";
import { directPlan } from "../lifecycle/directDestroy";

const catalog = { database: { name: "br_x_analytics", owner: "br_x_owner" }, roles: { br_x_owner: {}, br_x_loader: {} } };
const resource = (type: string, custom: boolean, outputs: Record<string, unknown> = {}) => ({ urn: `urn:pulumi:br-x::dataops::${type}::n`, type, custom, outputs });
const checkpoint = (resources: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ version: 3, checkpoint: { stack: "organization/dataops/br-x", latest: { manifest: {}, resources, ...extra } } });
const branch = [
    resource("pulumi:pulumi:Stack", false),
    resource("dataops:platform:DataPlatform", false),
    resource("pulumi:providers:pulumi-nodejs", true),
    resource("pulumi-nodejs:dynamic/dataops:GeneratedPassword", true, { value: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:…" } }),
    resource("pulumi-nodejs:dynamic/dataops:ServerVersion", true),
    resource("pulumi-nodejs:dynamic/dataops:SqlCatalog", true, { catalog, connection: { ciphertext: "v1:…" } }),
];

describe("a destroy without the engine", () => {
    it("GIVEN a branch environment's state THEN it drops the catalog the state recorded", () => {
        expect(directPlan(checkpoint(branch))).toEqual({ ok: true, catalogs: [catalog], resources: 6 });
    });

    it("GIVEN a stack made and never updated THEN there is nothing to drop", () => {
        expect(directPlan(JSON.stringify({ version: 3, checkpoint: { stack: "organization/dataops/br-x", latest: null } }))).toEqual({ ok: true, catalogs: [], resources: 0 });
    });

    it.each([
        ["a docker container", checkpoint([...branch, resource("docker:index/container:Container", true)]), "a docker:index/container:Container resource"],
        ["an aws cluster", checkpoint([...branch, resource("aws:rds/cluster:Cluster", true)]), "a aws:rds/cluster:Cluster resource"],
        ["a resource of the provider engine", checkpoint([...branch, resource("postgresql:index/role:Role", true)]), "a postgresql:index/role:Role resource"],
        ["a dynamic resource it does not know", checkpoint([...branch, resource("pulumi-nodejs:dynamic/dataops:DataMajor", true)]), "a pulumi-nodejs:dynamic/dataops:DataMajor resource"],
        ["an interrupted run's pending operations", checkpoint(branch, { pending_operations: [{ type: "creating" }] }), "pending operations of an interrupted run"],
        ["a catalog without its database", checkpoint([resource("pulumi-nodejs:dynamic/dataops:SqlCatalog", true, { catalog: { roles: {} } })]), "a SqlCatalog without its catalog"],
        ["a checkpoint of another version", JSON.stringify({ version: 4, checkpoint: {} }), "a checkpoint of version 4"],
        ["a checkpoint cut short", checkpoint(branch).slice(0, 100), "the checkpoint is not JSON"],
        ["no checkpoint", undefined, "no checkpoint"],
    ])("GIVEN %s THEN the engine destroys it", (_what, text, why) => {
        expect(directPlan(text)).toEqual({ ok: false, why });
    });
});
