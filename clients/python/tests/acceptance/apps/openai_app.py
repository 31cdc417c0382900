"""An app calling the OpenAI client directly, instrumented by the library named in argv[1]:
``openinference`` (openinference-instrumentation-openai), ``otel`` (opentelemetry-
instrumentation-openai-v2) or ``traceloop`` (traceloop-sdk)."""

from __future__ import annotations

import sys
from typing import List, Optional, Tuple

import common
import openai
from opentelemetry import trace


def instrument(library: str):
    if library == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        provider = common.tracer_provider("openinference-openai-app")
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return provider.force_flush
    if library == "otel":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2

        provider = common.tracer_provider("otel-openai-v2-app")
        V2().instrument(tracer_provider=provider)
        return provider.force_flush
    if library == "traceloop":
        from traceloop.sdk import Traceloop
        from traceloop.sdk.instruments import Instruments

        import closedloop

        Traceloop.init(
            app_name="traceloop-app",
            exporter=common.exporter(),
            instruments={Instruments.OPENAI},
            telemetry_enabled=False,
        )
        # Traceloop owns the provider; closedloop's processor joins it.
        provider = trace.get_tracer_provider()
        provider.add_span_processor(closedloop.ClosedloopSpanProcessor())  # type: ignore[attr-defined]
        return provider.force_flush  # type: ignore[attr-defined]
    raise SystemExit(f"unknown library {library}")


def main() -> None:
    flush = instrument(sys.argv[1])
    client = openai.OpenAI()

    def answer(question: str) -> Tuple[str, Optional[List[str]]]:
        completion = client.chat.completions.create(
            model=common.MODEL,
            messages=[
                {
                    "role": "system",
                    "content": common.TEMPLATE.render(context=common.STATIC_CONTEXT),
                },
                {"role": "user", "content": question},
            ],
        )
        return completion.choices[0].message.content or "", None

    common.serve(answer, flush)


if __name__ == "__main__":
    main()
