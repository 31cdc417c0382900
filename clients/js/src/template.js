// Prompt templates with content-hash versions, as closedloop-tracing's `PromptTemplate`
// (crates/tracing/src/template.rs).

import { createHash } from "node:crypto";

/**
 * A prompt template: a stable id, and a version that is the first 12 hex digits of the
 * SHA-256 of its text unless one is pinned. The hash (`sha256:` and 64 hex digits) always
 * identifies the exact text. Only the id, version and hash leave the process: the text is
 * never put on a span.
 */
export class PromptTemplate {
  /**
   * @param {string} id the stable template id (`closedloop.prompt.template.id`)
   * @param {string} text the template text with its placeholders unrendered
   * @param {{ version?: string }} [options] `version` pins a version name (`v3`, `2026-11-01`)
   */
  constructor(id, text, options = {}) {
    if (typeof id !== "string" || id === "") {
      throw new TypeError("a prompt template needs a non-empty id");
    }
    if (typeof text !== "string") {
      throw new TypeError("a prompt template's text must be a string");
    }
    const digest = createHash("sha256").update(text, "utf8").digest("hex");
    /** The template id (`closedloop.prompt.template.id`, also `gen_ai.prompt.name`). */
    this.id = id;
    /** The content hash, `sha256:` and 64 hex digits (`closedloop.prompt.template.hash`). */
    this.hash = `sha256:${digest}`;
    /**
     * The pinned version, or the first 12 hex digits of the hash
     * (`closedloop.prompt.template.version`).
     */
    this.version = options.version ?? digest.slice(0, 12);
    Object.freeze(this);
  }
}
