/**
 * A value that must never reach a log, an output channel, a file or an error message by accident.
 * Every implicit conversion (string interpolation, JSON, util.inspect/console.log) yields the mask;
 * only an explicit `reveal()` gives the value, so each use of the secret is visible in a review.
 */
import { inspect } from 'node:util';

export const REDACTED = '«redacted»';

export class Secret {
  // A private field, not a property: Object.keys, spreading and structuredClone do not see it.
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  /** True for an empty secret, e.g. a database URI without a password. */
  get isEmpty(): boolean {
    return this.#value.length === 0;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
