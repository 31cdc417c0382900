"""A LangChain RAG chain (in-memory vector store retriever, chat prompt, ChatOpenAI),
instrumented by openinference-instrumentation-langchain."""

from __future__ import annotations

from typing import List, Optional, Tuple

import common
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from openinference.instrumentation.langchain import LangChainInstrumentor


def main() -> None:
    provider = common.tracer_provider("langchain-app")
    LangChainInstrumentor().instrument(tracer_provider=provider)

    # check_embedding_ctx_length=False: no tiktoken (which would download its encodings).
    embeddings = OpenAIEmbeddings(model=common.EMBEDDING_MODEL, check_embedding_ctx_length=False)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(
        [
            Document(id=chunk_id, page_content=text, metadata={"id": chunk_id})
            for chunk_id, text in common.KB
        ]
    )
    retriever = store.as_retriever(search_kwargs={"k": 2})
    placed: List[str] = []

    def context(documents: List[Document]) -> str:
        placed[:] = [str(document.metadata["id"]) for document in documents]
        return "\n".join(document.page_content for document in documents)

    # The system message is the closedloop template with {context}; the question is the user's.
    prompt = ChatPromptTemplate.from_messages(
        [("system", common.TEMPLATE.text), ("human", "{question}")]
    )
    chain = (
        {"context": retriever | RunnableLambda(context), "question": RunnablePassthrough()}
        | prompt
        | ChatOpenAI(model=common.MODEL)
        | StrOutputParser()
    )

    def answer(question: str) -> Tuple[str, Optional[List[str]]]:
        text = chain.invoke(question)
        return text, list(placed)

    common.serve(answer, provider.force_flush)


if __name__ == "__main__":
    main()
