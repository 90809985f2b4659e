/** A problem with one field of one host profile, written for the person editing the settings. */
export interface ConfigError {
  /** The profile's name, or `#<n>` (1-based position) when it has no usable name; '' for file-level problems. */
  host: string;
  /** Dotted path of the offending field, e.g. `ssh.port`; '' when the problem is the whole entry. */
  field: string;
  /** A complete phrase that names the field, e.g. `ssh.port must be an integer between 1 and 65535 (got "abc")`. */
  message: string;
}

/** `Host "prod": ssh.port must be an integer between 1 and 65535 (got "abc").` */
export function formatConfigError(e: ConfigError): string {
  const where = e.host === '' ? '' : e.host.startsWith('#') ? `Host ${e.host}: ` : `Host "${e.host}": `;
  const end = /[.?!]$/.test(e.message) ? '' : '.';
  return `${where}${e.message}${end}`;
}

/** Renders a value the user wrote, short enough for a one-line message. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string': {
      const s = value.length > 60 ? `${value.slice(0, 57)}...` : value;
      return JSON.stringify(s);
    }
    case 'number':
    case 'boolean':
      return String(value);
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}
