//! A seeded simulator of user sessions against the closedloop RAG example (work in progress).
