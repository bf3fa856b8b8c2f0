/** Constants of the OpenAI-compatible server that the CLI needs without loading the server. */
export const DEFAULT_OPENAI_PORT = 8080;
