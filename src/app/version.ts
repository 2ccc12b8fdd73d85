import pkg from "../../package.json" with { type: "json" };

/** The collector's version (package.json), embedded at build time. */
export const VERSION: string = pkg.version;
