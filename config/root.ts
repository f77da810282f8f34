// The project folder: the nearest folder upward that holds Pulumi.yaml. Found by walking up,
// not from a fixed depth, so the same code works from its TypeScript source and from its
// compiled copy in .dataops/build, and whatever the caller's working directory.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

export function projectRoot(from: string = __dirname): string {
    for (let dir = from; ; dir = dirname(dir)) {
        if (existsSync(join(dir, "Pulumi.yaml")) && existsSync(join(dir, "package.json"))) return dir;
        if (dirname(dir) === dir) throw new Error(`no Pulumi.yaml above ${from}: run dataops from inside the project`);
    }
}
