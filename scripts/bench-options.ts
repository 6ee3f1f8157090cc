// What every benchmark in scripts/bench/ parses the same way: `--name value` pairs of numbers over its defaults,
// --help, and a one-line reason on failure. Lives outside scripts/bench/ because bench.sh runs every file there.

/** Prints `<bench> bench: <message>` and exits 1. */
export function benchFail(bench: string, message: string): never {
  console.error(`${bench} bench: ${message}`);
  process.exit(1);
}

/**
 * Reads `--name value` pairs into a copy of `defaults` (only its keys, only values `accept` allows); `--help` prints
 * `help` and exits 0.
 */
export function parseNumberOptions<T extends Record<string, number>>(
  bench: string,
  help: string,
  defaults: T,
  args: string[],
  accept: (value: number) => boolean,
): T {
  const options: Record<string, number> = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(help);
      process.exit(0);
    }
    const key = arg?.replace(/^--/, "");
    const value = Number(args[++i]);
    if (!key || !(key in options) || !accept(value)) benchFail(bench, `bad argument ${arg} (see --help)`);
    options[key] = value;
  }
  return options as T;
}

/** For counts: a whole number of at least 1. */
export const positiveInteger = (value: number) => Number.isInteger(value) && value >= 1;
