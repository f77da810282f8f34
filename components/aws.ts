// @pulumi/aws, loaded only by environments that have AWS resources: its module graph takes
// about 0.2 s to load, which every update of a server or docker environment would pay.
import type * as Aws from "@pulumi/aws";

export function awsModule(): typeof Aws {
    return require("@pulumi/aws") as typeof Aws;
}
