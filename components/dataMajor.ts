// The docker warehouse keeps its data in a volume, and PostgreSQL's data folder is bound to
// the major that wrote it: a 17 image on a 16 volume refuses to start, after the old container
// is gone. This resource remembers which major the volume holds; the container depends on it,
// so a pin that changes the major stops the update here, before the container is replaced,
// with the steps of an upgrade. A minor change passes (same on-disk format).
import * as pulumi from "@pulumi/pulumi";

export interface DataMajorInputs {
    /** The major whose files the volume holds. */
    major: number;
    /** For the message: the container and volume to dump from and restore into. */
    container: string;
    volume: string;
}

/** The steps of a major upgrade of a docker warehouse: what the refusal says. */
export function majorChangeRefusal(olds: DataMajorInputs, news: DataMajorInputs): string {
    return (
        `dataops:warehouse.engineVersion: the docker volume ${olds.volume} holds PostgreSQL ${olds.major} data, which a ${news.major} server cannot open; ` +
        `nothing was changed (the ${olds.major} container still runs). To upgrade: ` +
        `1) dump it: docker exec ${olds.container} pg_dumpall -U postgres > warehouse-${olds.major}.sql; ` +
        `2) remove the old environment: dataops destroy for a branch, or pulumi destroy for this stack (pulumi state unprotect first where it is protected); ` +
        `3) up again with the new pin: a new volume, initialised by PostgreSQL ${news.major}; ` +
        `4) restore: docker exec -i ${news.container} psql -U postgres -f - < warehouse-${olds.major}.sql. ` +
        `A branch environment can instead be destroyed and made again, empty or from production (dataops up --data)`
    );
}

export const dataMajorProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: DataMajorInputs) {
        return { id: inputs.volume, outs: inputs };
    },
    async diff(_id: string, olds: DataMajorInputs, news: DataMajorInputs) {
        return { changes: olds.major !== news.major || olds.container !== news.container || olds.volume !== news.volume };
    },
    async update(_id: string, olds: DataMajorInputs, news: DataMajorInputs) {
        if (olds.major !== news.major && olds.volume === news.volume) throw new Error(majorChangeRefusal(olds, news));
        return { outs: news };
    },
    async delete() {},
};

export interface DataMajorArgs {
    readonly major: number;
    readonly container: string;
    readonly volume: string;
}

/** Which PostgreSQL major a docker warehouse's volume holds; a change of major is refused with the upgrade's steps. */
export class DataMajor extends pulumi.dynamic.Resource {
    declare readonly major: pulumi.Output<number>;

    constructor(name: string, args: DataMajorArgs, opts: pulumi.CustomResourceOptions = {}) {
        if (!Number.isInteger(args.major) || args.major < 9) throw new Error(`DataMajor ${name}: major must be a PostgreSQL major such as 16, given ${args.major}`);
        super(dataMajorProvider, name, { ...args }, opts, "dataops", "DataMajor");
    }
}
