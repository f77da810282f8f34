// Two modules @pulumi/pulumi loads at start and most processes never use, loaded on first use.
//
// Its function serializer requires `typescript` (to parse a function's text) and its code-path
// computation `@npmcli/arborist` (to walk node_modules) at load time: about 0.45 s and 50 MB
// for every Node process that loads the SDK. The dynamic-provider host the engine starts for
// every update and destroy deserializes providers and never calls either; the CLI serializes
// providers (typescript, during the update) but never computes code paths (arborist). Each is
// replaced, for requests from inside @pulumi/pulumi only, by a stand-in that loads the real
// module the first time a property of it is read: behaviour is unchanged, the cost is paid only
// where it is used. The CLI requires this file before the SDK (local/automation.ts); the engine's
// processes get it through NODE_OPTIONS (local/workspace.ts).
"use strict";
const Module = require("node:module");

const LAZY = new Set(["typescript", "@npmcli/arborist"]);
const FROM_SDK = /[\\/]node_modules[\\/]@pulumi[\\/]pulumi[\\/]/;

if (!Module._load.dataopsLazy) {
    const load = Module._load;
    const lazyLoad = function (request, parent, isMain) {
        if (!LAZY.has(request) || !parent || !FROM_SDK.test(parent.filename ?? "")) return load.apply(this, arguments);
        // Not installed: fail now, as the real require would (typescript-shim then takes its own copy).
        Module._resolveFilename(request, parent, isMain);
        let real;
        const module = () => (real ??= load.call(this, request, parent, isMain));
        // `__esModule` keeps TypeScript's __importStar from copying (and so loading) every property.
        return new Proxy(
            {},
            {
                get: (_t, key) => (key === "__esModule" ? true : module()[key]),
                has: (_t, key) => key in module(),
                ownKeys: () => Reflect.ownKeys(module()),
                getOwnPropertyDescriptor: (_t, key) => {
                    const d = Object.getOwnPropertyDescriptor(module(), key);
                    return d && { ...d, configurable: true };
                },
            },
        );
    };
    lazyLoad.dataopsLazy = true;
    Module._load = lazyLoad;
}
