/** Errors of the Hugging Face Hub layer; each message names the fix. */
import { SpecDecodeError } from "../errors.js";

export type HubErrorCode =
  | "HUB_AUTH" // 401/403: gated or private repo, token missing or without access
  | "HUB_NOT_FOUND" // repo, revision, file or variant does not exist
  | "HUB_OFFLINE" // HF_HUB_OFFLINE=1 and the cache lacks what is needed
  | "HUB_NOT_CACHED" // downloads are not allowed here (MCP without pull_model) and the cache lacks it
  | "HUB_INTEGRITY" // a downloaded file's hash or size differs from the Hub's
  | "HUB_NETWORK" // the Hub could not be reached or dropped the connection too often
  | "DISK_SPACE"; // not enough free space for what a pull or build will write

export class HubError extends SpecDecodeError {
  constructor(code: HubErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
