"""A LlamaIndex query engine (vector index retriever, chat prompt, OpenAI LLM),
instrumented by openinference-instrumentation-llama-index."""

from __future__ import annotations

from typing import List, Optional, Tuple

import common
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.schema import TextNode
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai import OpenAI
from openinference.instrumentation.llama_index import LlamaIndexInstrumentor


def main() -> None:
    provider = common.tracer_provider("llamaindex-app")
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)

    # A whitespace tokenizer: LlamaIndex's default is tiktoken, which downloads its encodings.
    Settings.tokenizer = lambda text: text.split()
    Settings.llm = OpenAI(model=common.MODEL)
    Settings.embed_model = OpenAIEmbedding(model=common.EMBEDDING_MODEL)

    index = VectorStoreIndex([TextNode(id_=chunk_id, text=text) for chunk_id, text in common.KB])
    # The system message is the closedloop template, LlamaIndex's {context_str} for {context};
    # the question is the user's.
    prompt = ChatPromptTemplate(
        message_templates=[
            ChatMessage(
                role=MessageRole.SYSTEM,
                content=common.TEMPLATE.text.replace("{context}", "{context_str}"),
            ),
            ChatMessage(role=MessageRole.USER, content="{query_str}"),
        ]
    )
    engine = index.as_query_engine(similarity_top_k=2, text_qa_template=prompt)

    def answer(question: str) -> Tuple[str, Optional[List[str]]]:
        response = engine.query(question)
        return str(response), [node.node.node_id for node in response.source_nodes]

    common.serve(answer, provider.force_flush)


if __name__ == "__main__":
    main()
