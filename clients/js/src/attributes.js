// The attribute keys this package writes and reads (docs/semconv.md), spelled once.

export const SESSION_ID = "session.id";
export const USER_ID = "user.id";
export const PROMPT_TEMPLATE_ID = "closedloop.prompt.template.id";
export const PROMPT_TEMPLATE_VERSION = "closedloop.prompt.template.version";
export const PROMPT_TEMPLATE_HASH = "closedloop.prompt.template.hash";
export const GEN_AI_PROMPT_NAME = "gen_ai.prompt.name";
export const CONTEXT_CHUNK_IDS = "closedloop.context.chunk_ids";
export const QUERY_FINGERPRINT = "closedloop.query.fingerprint";
export const QUERY_SEMANTIC_FINGERPRINT = "closedloop.query.semantic_fingerprint";
export const TURN_INDEX = "closedloop.turn.index";
export const DATA_SOURCE_ID = "gen_ai.data_source.id";
export const RETRIEVAL_INDEX_VERSION = "closedloop.retrieval.index.version";

export const FEEDBACK_SIGNAL = "closedloop.feedback.signal";
export const FEEDBACK_KIND = "closedloop.feedback.kind";
export const FEEDBACK_SOURCE = "closedloop.feedback.source";
export const FEEDBACK_VALUE = "closedloop.feedback.value";
export const FEEDBACK_COMMENT = "closedloop.feedback.comment";
export const FEEDBACK_ID = "closedloop.feedback.id";
export const FAILURE_CATEGORY = "closedloop.failure.category";
export const LINK_TYPE = "closedloop.link.type";
export const GEN_AI_RESPONSE_ID = "gen_ai.response.id";
export const GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name";
export const GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value";
export const GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label";
export const GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation";

// Read to recognise a model call of any instrumentation, as the receiver does.
export const GEN_AI_OPERATION_NAME = "gen_ai.operation.name";
export const OPENINFERENCE_SPAN_KIND = "openinference.span.kind";
export const OPENLLMETRY_REQUEST_TYPE = "llm.request.type";

/** `closedloop.link.type` of the link from a feedback span to the judged span. */
export const LINK_JUDGED_RESPONSE = "judged_response";

/** The `closedloop.feedback.signal` values. */
export const FEEDBACK_SIGNALS = Object.freeze([
  "thumbs_up",
  "thumbs_down",
  "rating",
  "regenerate",
  "rephrase",
  "edit",
  "copy",
  "abandon",
  "escalate",
  "report",
  "label",
]);

/** The `closedloop.failure.category` values. */
export const FAILURE_CATEGORIES = Object.freeze([
  "irrelevant_context",
  "missing_context",
  "hallucination",
  "wrong_answer",
  "incomplete",
  "format",
  "refusal",
  "harmful",
  "other",
]);
