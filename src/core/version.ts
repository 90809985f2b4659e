import pkg from '../../package.json';

/** The tool's own version, recorded in every manifest. */
export const TOOL_VERSION: string = pkg.version;
