// closedloop for JavaScript applications.

export { queryFingerprint, FINGERPRINT_SCHEME } from "./fingerprint.js";
export {
  SemanticHasher,
  semanticSimilarity,
  semanticHamming,
  SEMANTIC_FINGERPRINT_SCHEME,
  SUGGESTED_SEMANTIC_THRESHOLD,
} from "./semantic.js";
export { issueFeedbackToken, verifyFeedbackToken, FeedbackTokenError } from "./token.js";
export { PromptTemplate } from "./template.js";
export { Turn, withTurn, currentTurn, contextWithTurn, responseRef, isModelCall } from "./turn.js";
export { ClosedloopSpanProcessor } from "./processor.js";
export { sendFeedback, recordFeedback, FeedbackApiError, FEEDBACK_PATH } from "./feedback.js";
export { FEEDBACK_SIGNALS, FAILURE_CATEGORIES } from "./attributes.js";
