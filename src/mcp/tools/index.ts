/** Every tool of the server, one file each. Adding a tool = one file + one line here. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ToolContext } from "../context.js";
import * as buildModel from "./build-model.js";
import * as generateSpeculative from "./generate-speculative.js";
import * as listModels from "./list-models.js";
import * as loadModel from "./load-model.js";
import * as measureSpeedup from "./measure-speedup.js";
import * as modelInfo from "./model-info.js";
import * as pullModel from "./pull-model.js";
import * as suggestDraft from "./suggest-draft.js";
import * as tuneDraftK from "./tune-draft-k.js";
import * as unloadModel from "./unload-model.js";

export interface ToolModule {
  name: string;
  register(server: McpServer, ctx: ToolContext): unknown;
}

export const TOOLS: ToolModule[] = [
  generateSpeculative,
  tuneDraftK,
  measureSpeedup,
  listModels,
  loadModel,
  unloadModel,
  modelInfo,
  buildModel,
  pullModel,
  suggestDraft,
];

export const TOOL_NAMES: string[] = TOOLS.map((t) => t.name);
