// Drives a database outage in the middle of a stream of requests, by what the stream sees, never by the clock:
//   before    the database is up; the stream runs
//   crashing  `pg_ctl stop -m immediate` is under way; up to `inFlight` more requests go out, so some are in flight
//             when the server dies; then the stream waits until it is down
//   down      the database is gone; the stream keeps sending until `failuresWhileDown` requests were answered 503,
//             `whileDown` runs (e.g. a health probe), then the stream waits while the database starts again
//   up        started again (pg_ctl start -w returned, recovery done): every request from here on must succeed
import type { CrashCluster } from "./cluster.ts";

export type OutagePhase = "before" | "crashing" | "down" | "up";

export interface OutageOptions {
  cluster: CrashCluster;
  /** Requests that may leave while the crash is under way. Default 3. */
  inFlight?: number;
  /** 503 answers to requests sent while down before the database is started again. Default 2. */
  failuresWhileDown?: number;
  /** Runs while the database is down, before it is started again. */
  whileDown?: () => Promise<void>;
}

export class Outage {
  phase: OutagePhase = "before";
  /** Set when crash() or start() failed; the stream stops and the test reports it. */
  failure: unknown = null;
  readonly #options: Required<Omit<OutageOptions, "whileDown">> & Pick<OutageOptions, "whileDown">;
  #sentWhileCrashing = 0;
  #failuresWhileDown = 0;
  #enoughFailures!: () => void;
  readonly #enoughFailuresSeen = new Promise<void>((resolve) => (this.#enoughFailures = resolve));
  #finished: Promise<void> | null = null;
  #down!: () => void;
  readonly #isDown = new Promise<void>((resolve) => (this.#down = resolve));
  #up!: () => void;
  readonly #isUp = new Promise<void>((resolve) => (this.#up = resolve));

  constructor(options: OutageOptions) {
    this.#options = { inFlight: 3, failuresWhileDown: 2, ...options };
  }

  /** Starts the crash (once); the stream goes on. */
  trigger(): void {
    if (this.#finished) return;
    this.phase = "crashing";
    this.#finished = this.#run();
  }

  async #run(): Promise<void> {
    try {
      await this.#options.cluster.crash();
      this.phase = "down";
      this.#down();
      await this.#enoughFailuresSeen;
      await this.#options.whileDown?.();
      await this.#options.cluster.start();
    } catch (error) {
      this.failure = error;
    } finally {
      this.phase = "up";
      this.#down();
      this.#up();
    }
  }

  /**
   * Call before sending each request: waits when the stream should hold (see the top of this file) and returns the
   * phase the request is sent in.
   */
  async beforeSend(): Promise<OutagePhase> {
    if (this.phase === "crashing") {
      if (this.#sentWhileCrashing >= this.#options.inFlight) await this.#isDown;
      else this.#sentWhileCrashing++;
    }
    if (this.phase === "down" && this.#failuresWhileDown >= this.#options.failuresWhileDown) await this.#isUp;
    return this.phase;
  }

  /** Call with each answer and the phase its request was sent in (any failed answer counts; tests check it is 503). */
  afterAnswer(sentIn: OutagePhase, status: number): void {
    if (sentIn === "down" && status !== 200 && ++this.#failuresWhileDown >= this.#options.failuresWhileDown) {
      this.#enoughFailures();
    }
  }

  /** Resolves when the database is up again (or at once if no crash was triggered). Ends the down phase early when the
   *  stream ran out before enough requests failed, so a broken stream fails its assertions instead of hanging. */
  async finished(): Promise<void> {
    this.#enoughFailures();
    await this.#finished;
    if (this.failure) throw this.failure;
  }
}
