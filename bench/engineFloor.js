// The smallest Pulumi CLI there can be, for the engine floor of `npm run bench`: a Node process
// that loads the Automation API and runs `up` (or `destroy`) of an inline program with one
// dynamic resource doing nothing. What every command of a tool built on Pulumi pays, whatever it
// does: Node's start, the SDK, the engine, the dynamic-provider host, the passphrase's key.
// Usage: node bench/engineFloor.js up|destroy <workDir> <the folder above the engine's bin/> (env: the engine's).
"use strict";
const [action, workDir, bin] = process.argv.slice(2);
const { LocalWorkspace, PulumiCommand } = require("@pulumi/pulumi/automation");
const pulumi = require("@pulumi/pulumi");

const provider = { create: async () => ({ id: "x", outs: {} }) };
class Nothing extends pulumi.dynamic.Resource {
    constructor(name) {
        super(provider, name, {}, {});
    }
}

(async () => {
    const pulumiCommand = await PulumiCommand.get({ root: bin, skipVersionCheck: true });
    const program = async () => {
        new Nothing("nothing");
    };
    const stack = await LocalWorkspace.createOrSelectStack({ stackName: "floor", projectName: "enginefloor", program }, { workDir, pulumiCommand });
    if (action === "up") await stack.up({ color: "never" });
    else await stack.destroy({ color: "never" });
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
