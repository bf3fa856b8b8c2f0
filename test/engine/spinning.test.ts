import { describe, expect, it } from "vitest";
import { spinningConfig, spinningPolicy } from "../../src/engine/session.js";

describe("intra-op spinning policy (SPEC_DECODE_INTRA_OP_SPINNING)", () => {
  it("maps the environment value to a policy", () => {
    expect(spinningPolicy({})).toBe("off");
    expect(spinningPolicy({ SPEC_DECODE_INTRA_OP_SPINNING: "0" })).toBe("off");
    expect(spinningPolicy({ SPEC_DECODE_INTRA_OP_SPINNING: "off" })).toBe("off");
    expect(spinningPolicy({ SPEC_DECODE_INTRA_OP_SPINNING: "1" })).toBe("always");
    expect(spinningPolicy({ SPEC_DECODE_INTRA_OP_SPINNING: "always" })).toBe("always");
    expect(spinningPolicy({ SPEC_DECODE_INTRA_OP_SPINNING: "run" })).toBe("run");
  });
  it("writes onnxruntime's session config entries for each policy", () => {
    expect(spinningConfig("off")).toEqual({ intra_op: { allow_spinning: "0" } });
    expect(spinningConfig("always")).toEqual({ intra_op: { allow_spinning: "1" } });
    // spin inside a Run, stop the workers when it returns (they would steal the other model's cores)
    expect(spinningConfig("run")).toEqual({ intra_op: { allow_spinning: "1" }, force_spinning_stop: "1" });
  });
});
