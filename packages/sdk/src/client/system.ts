import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import type { BodyOf } from "./types.js";

/** `client.system` (admin keys only): the host-token signing keys and the CA, and their rotations. */
export class System {
  constructor(private readonly transport: Transport) {}

  /** A new key signs host tokens from now on; tokens of the earlier one verify until they expire. */
  rotateSigningKey(options?: RequestOptions) {
    return this.transport.call(routes.rotateSigningKey, {}, options);
  }

  /** The CA rotation's phase, the active and previous CA, and the hosts still on the previous one. */
  ca(options?: RequestOptions) {
    return this.transport.call(routes.getCaStatus, {}, options);
  }

  /** `{ action: "start" }` starts a CA rotation; `{ action: "complete" }` retires the previous CA (`force` while online hosts still hold its certificates). */
  rotateCa(body: BodyOf<typeof routes.rotateCa>, options?: RequestOptions) {
    return this.transport.call(routes.rotateCa, { body }, options);
  }
}
