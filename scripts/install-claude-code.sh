#!/bin/sh
# Register the MCP server with Claude Code (see install-claude-code.mjs --help for the options).
exec node "$(dirname "$0")/install-claude-code.mjs" "$@"
