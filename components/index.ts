export { AccessRoles, accessMatrix, creators, type AccessMatrix, type AccessRolesArgs } from "./accessRoles";
export { DataPlatform, physicalName, type BuildInfo, type DataPlatformArgs, type EnvironmentSummary } from "./dataPlatform";
export { EnvironmentDatabase, type EnvironmentDatabaseArgs } from "./database";
export { DatabaseComment, GeneratedPassword } from "./generated";
export { GrantQueue } from "./grantQueue";
export { LoaderConnector, loaderImage, loaderRuntime, type LoaderConnectorArgs } from "./loaderConnector";
export { Warehouse, type WarehouseArgs } from "./warehouse";
export { providerObjects, sqlObjects, SQL_ENGINES, type PgObjects, type SqlEngine } from "./pg";
export { SqlObject } from "./sql";
